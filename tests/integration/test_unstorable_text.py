"""Text PostgreSQL cannot store (U+0000) is the client's mistake, not a 500, even when it
gets past the decoder: the database seam turns it into InvalidInput and writes nothing."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import transaction
from app.db.tables import orders
from app.domain.errors import InvalidInput
from app.domain.origin import Origin
from app.services.orders import create_order
from tests.support.orders import emitter, new_order

pytestmark = pytest.mark.anyio
API = Origin(cause="api", cause_id="req-1", correlation_id="req-1")


@pytest.mark.parametrize(
    "where",
    ["text column (order_items.name)", "jsonb (orders.metadata)"],
)
async def test_nul_in_text_is_invalid_input_and_writes_nothing(
    engine: AsyncEngine, where: str
) -> None:
    order = new_order()  # built directly: the decoder's rules do not run
    if where.startswith("text"):
        item = msgspec.structs.replace(order.items[0], name="Test\x00Product")
        order = msgspec.structs.replace(order, items=[item])
    else:
        order = msgspec.structs.replace(order, metadata={"source": "w\x00b"})
    with pytest.raises(InvalidInput) as refused:
        async with transaction(engine) as conn:
            await create_order(conn, order, emitter=emitter(), origin=API)
    assert [error.field for error in refused.value.errors] == ["body"]
    assert "NUL" in refused.value.errors[0].message
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(orders))).scalar_one() == 0
