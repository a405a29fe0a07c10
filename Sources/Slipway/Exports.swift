// What an application needs comes with `import Slipway`: the slip model, the transport values, and the RabbitMQ
// transport to connect with.
@_exported import SlipwayAMQP
@_exported import SlipwayCore
@_exported import SlipwayTransport
