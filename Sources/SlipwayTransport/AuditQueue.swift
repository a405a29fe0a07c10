import SlipwayCore

extension MessageTransport {
    /// Declares the events exchange and the durable audit queue bound to every event: the one definition the audit
    /// sink, the processors and `slip topology --apply` share. (A queue declared again with other arguments is refused
    /// with PRECONDITION_FAILED, so nobody declares it another way.) Whoever comes first creates it, and an event
    /// published before the sink's first start waits in the queue instead of being dropped by the broker.
    public func declareAuditQueue(_ topology: Topology) async throws {
        try await declareTopicExchange(topology.eventsExchange)
        try await declareQueue(topology.auditQueue)
        try await bindQueue(topology.auditQueue, exchange: topology.eventsExchange, bindingKey: Topology.auditBindingKey)
    }
}
