#ifndef SLIPWAY_CRABBITMQ_SHIM_H
#define SLIPWAY_CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>

// A non-blocking eventfd that wakes a consumer thread out of poll().
static inline int slipway_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

// Names the calling thread for top -H and perf (the kernel keeps 15 bytes). prctl is variadic, which Swift cannot call.
static inline void slipway_name_thread(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

// amqp_login is variadic (SASL arguments), which Swift cannot call: this wrapper fixes the PLAIN mechanism's arguments.
// It also announces the `connection.blocked` capability, which librabbitmq (0.11) does not by default: without it,
// RabbitMQ under a memory or disk alarm silently stops reading a publishing connection, and the client sees only
// confirms that never come. With it, the broker says `connection.blocked` (with its reason) and later `unblocked`.
// librabbitmq merges this table into its own default capabilities.
static inline amqp_rpc_reply_t slipway_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                        int channel_max, int frame_max, int heartbeat,
                                                        const char *user, const char *password) {
    amqp_table_entry_t capability;
    capability.key = amqp_cstring_bytes("connection.blocked");
    capability.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capability.value.value.boolean = 1;
    amqp_table_entry_t property;
    property.key = amqp_cstring_bytes("capabilities");
    property.value.kind = AMQP_FIELD_KIND_TABLE;
    property.value.value.table.num_entries = 1;
    property.value.value.table.entries = &capability;
    amqp_table_t properties;
    properties.num_entries = 1;
    properties.entries = &property;
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, &properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

// The broker's reason for a connection.blocked method ("low on memory", "low on disk").
static inline amqp_bytes_t slipway_connection_blocked_reason(const amqp_method_t *method) {
    return ((const amqp_connection_blocked_t *)method->decoded)->reason;
}

// Method ids are macros with casts, which Swift does not import: re-exported as plain enum constants.
enum {
    SLIPWAY_BASIC_ACK_METHOD = AMQP_BASIC_ACK_METHOD,
    SLIPWAY_BASIC_NACK_METHOD = AMQP_BASIC_NACK_METHOD,
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

// MARK: TLS

// What a TLS handshake found wrong, written by the callbacks below: OpenSSL's own verify result is gone by the time
// amqp_socket_open returns, because librabbitmq frees the SSL object of a failed handshake.
typedef struct {
    int verify_error;       // the first X509_V_ERR_* of the peer's chain, 0 if none
    int verify_depth;       // where in the chain (0 = the server's own certificate)
    char subject[256];      // that certificate's subject, one line
    char server_name[256];  // the SNI to send instead of the host librabbitmq sends, "" to keep it
} slipway_tls_report;

static inline slipway_tls_report *slipway_tls_report_of(const SSL *ssl) {
    return ssl ? (slipway_tls_report *)SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
}

static inline int slipway_tls_verify_callback(int ok, X509_STORE_CTX *store) {
    slipway_tls_report *report =
        slipway_tls_report_of(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (!ok && report && report->verify_error == 0) {
        report->verify_error = X509_STORE_CTX_get_error(store);
        report->verify_depth = X509_STORE_CTX_get_error_depth(store);
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        if (cert) X509_NAME_oneline(X509_get_subject_name(cert), report->subject, sizeof report->subject);
    }
    return ok;
}

// librabbitmq sets the SNI to the host it connects to just before the handshake; this runs at the handshake's start,
// before the ClientHello is written, and puts server_name_indication in its place.
static inline void slipway_tls_info_callback(const SSL *ssl, int where, int value) {
    (void)value;
    slipway_tls_report *report = slipway_tls_report_of(ssl);
    if ((where & SSL_CB_HANDSHAKE_START) && report && report->server_name[0] != 0)
        SSL_set_tlsext_host_name((SSL *)ssl, report->server_name);
}

// A key file with a passphrase would make OpenSSL prompt on the terminal; a processor has none to answer. Refuse.
static inline int slipway_tls_no_passphrase(char *buffer, int size, int rwflag, void *user) {
    (void)buffer; (void)size; (void)rwflag; (void)user;
    return 0;
}

// Sets what librabbitmq's TLS socket checks. With verify, OpenSSL checks the chain and the name during the handshake
// (SSL_VERIFY_PEER), the name as an IP address if expected_name is one, else as a DNS name: librabbitmq's own name
// check reads DNS names only, so a certificate for IP 127.0.0.1 would never match it. Returns 0 if the name is unusable.
static inline int slipway_tls_configure(amqp_socket_t *socket, slipway_tls_report *report, int verify,
                                        const char *expected_name) {
    SSL_CTX *ctx = (SSL_CTX *)amqp_ssl_socket_get_context(socket);
    SSL_CTX_set_app_data(ctx, report);
    SSL_CTX_set_info_callback(ctx, slipway_tls_info_callback);
    SSL_CTX_set_default_passwd_cb(ctx, slipway_tls_no_passphrase);
    amqp_ssl_socket_set_verify_hostname(socket, 0);
    amqp_ssl_socket_set_verify_peer(socket, verify ? 1 : 0);
    if (!verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 1;
    }
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int named = X509_VERIFY_PARAM_set1_ip_asc(param, expected_name) ||
                X509_VERIFY_PARAM_set1_host(param, expected_name, strlen(expected_name));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, slipway_tls_verify_callback);
    return named;
}

// The trust store OpenSSL was built to use (on Debian /usr/lib/ssl/certs, i.e. /etc/ssl/certs and its
// ca-certificates.crt; SSL_CERT_FILE and SSL_CERT_DIR override it). librabbitmq loads nothing by itself.
static inline int slipway_tls_trust_system_store(amqp_socket_t *socket) {
    return SSL_CTX_set_default_verify_paths((SSL_CTX *)amqp_ssl_socket_get_context(socket));
}

// OpenSSL's reason for the last failure on this thread ("wrong version number", "no such file", ...), or NULL; clears
// the thread's error queue so the next failure starts clean.
static inline const char *slipway_tls_take_error_reason(void) {
    const char *reason = ERR_reason_error_string(ERR_peek_last_error());
    ERR_clear_error();
    return reason;
}

static inline const char *slipway_tls_verify_error_text(int error) {
    return X509_verify_cert_error_string(error);
}

#endif
