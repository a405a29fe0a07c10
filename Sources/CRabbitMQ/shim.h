#ifndef SLIPWAY_CRABBITMQ_SHIM_H
#define SLIPWAY_CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <sys/eventfd.h>

// A non-blocking eventfd that wakes a consumer thread out of poll().
static inline int slipway_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

// amqp_login is variadic (SASL arguments), which Swift cannot call: this wrapper fixes the PLAIN mechanism's arguments.
static inline amqp_rpc_reply_t slipway_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                        int channel_max, int frame_max, int heartbeat,
                                                        const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

// Method ids are macros with casts, which Swift does not import: re-exported as plain enum constants.
enum {
    SLIPWAY_BASIC_ACK_METHOD = AMQP_BASIC_ACK_METHOD,
    SLIPWAY_BASIC_NACK_METHOD = AMQP_BASIC_NACK_METHOD,
    SLIPWAY_BASIC_RETURN_METHOD = AMQP_BASIC_RETURN_METHOD,
    SLIPWAY_BASIC_DELIVER_METHOD = AMQP_BASIC_DELIVER_METHOD,
    SLIPWAY_BASIC_CANCEL_METHOD = AMQP_BASIC_CANCEL_METHOD,
    SLIPWAY_CHANNEL_CLOSE_METHOD = AMQP_CHANNEL_CLOSE_METHOD,
    SLIPWAY_CONNECTION_CLOSE_METHOD = AMQP_CONNECTION_CLOSE_METHOD,
    SLIPWAY_CONNECTION_BLOCKED_METHOD = AMQP_CONNECTION_BLOCKED_METHOD,
    SLIPWAY_CONNECTION_UNBLOCKED_METHOD = AMQP_CONNECTION_UNBLOCKED_METHOD,
};

enum {
    SLIPWAY_FLAG_CONTENT_TYPE = AMQP_BASIC_CONTENT_TYPE_FLAG,
    SLIPWAY_FLAG_HEADERS = AMQP_BASIC_HEADERS_FLAG,
    SLIPWAY_FLAG_DELIVERY_MODE = AMQP_BASIC_DELIVERY_MODE_FLAG,
    SLIPWAY_FLAG_CORRELATION_ID = AMQP_BASIC_CORRELATION_ID_FLAG,
    SLIPWAY_FLAG_MESSAGE_ID = AMQP_BASIC_MESSAGE_ID_FLAG,
};

#endif
