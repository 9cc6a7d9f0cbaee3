"""Orders: the API, the domain, and the persistence shared by the relay and the consumer."""
