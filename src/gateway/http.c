/*
 * The HTTP side of the listener: /healthz, /readyz and /metrics (GET and HEAD; on admin_port
 * only, when it is set), Server-Sent Events at /events, and the refusal of WebSocket upgrades
 * that admission turns down. Static files are lws' own mount (gateway.c).
 *
 * A connection that carries an SSE stream takes no second request: HTTP/1.1 lets a client
 * pipeline one behind the stream, and lws 4.1.6 parses it, rebinds the connection's protocol
 * (which drops our per-connection memory, ending the session) and asks us to answer it — inside
 * the stream. The wsi's opaque pointer, which a rebinding keeps, marks such a connection, and
 * its next request hangs up.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway_private.h"
#include "headers.h"
#include "health.h"
#include "jobwire/alloc.h"
#include "jobwire/buf.h"
#include "jobwire/log.h"
#include "jobwire/metrics.h"
#include "session.h"

#define WS_PATH "/ws"
#define SSE_PATH "/events"
#define MAX_PATH 2048

static char carried_a_stream; /* the opaque user data of a connection that streamed SSE */

void
jw_http_count_refusal(unsigned status)
{
    switch (status) {
    case HTTP_STATUS_BAD_REQUEST:
        jw_metric_add(JW_M_REJECTED_BAD_REQUEST, 1);
        break;
    case HTTP_STATUS_FORBIDDEN:
        jw_metric_add(JW_M_REJECTED_FORBIDDEN, 1);
        break;
    case 429:
        jw_metric_add(JW_M_REJECTED_TOO_MANY, 1);
        break;
    case HTTP_STATUS_SERVICE_UNAVAILABLE:
        jw_metric_add(JW_M_REJECTED_DRAINING, 1);
        break;
    default:
        jw_metric_add(JW_M_REJECTED_UNAUTHENTICATED, 1);
        break;
    }
}

/* Sends the headers of an answer whose body (taken over) goes out on HTTP_WRITEABLE; a HEAD
 * request gets the headers only. */
static int
send_reply(struct lws *wsi, struct jw_conn *conn, unsigned status, const char *type,
           struct jw_buf *body, bool head)
{
    unsigned char buf[LWS_PRE + 512];
    unsigned char *p = buf + LWS_PRE, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_common_headers(wsi, status, type, body->len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, buf + LWS_PRE, &p, end)) {
        jw_buf_free(body);
        return -1;
    }
    if (head) {
        jw_buf_free(body);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    conn->reply = body->data; /* the buffer's memory now belongs to the connection */
    conn->reply_len = body->len;
    lws_callback_on_writable(wsi);
    return 0;
}

/* A refusal: the status with a one-line plain-text reason. */
static int
send_refusal(struct lws *wsi, struct jw_conn *conn, unsigned status, const char *why)
{
    struct jw_buf body;
    jw_buf_init(&body, 128);
    jw_buf_append_str(&body, why);
    jw_buf_append_str(&body, "\n");
    return send_reply(wsi, conn, status, "text/plain; charset=utf-8", &body, false);
}

/* The answer of a health or metrics path; returns the HTTP status. */
static unsigned
answer(struct jw_gateway *gw, const char *path, struct jw_buf *body, const char **type)
{
    *type = "text/plain; charset=utf-8";
    if (strcmp(path, "/healthz") == 0) {
        jw_buf_append_str(body, "ok\n");
        return HTTP_STATUS_OK;
    }
    if (strcmp(path, "/readyz") == 0) {
        const char *why;
        bool ready = jw_health_ready(gw->health, &why);
        jw_buf_append_str(body, ready ? "ready\n" : "not ready: ");
        if (!ready) {
            jw_buf_append_str(body, why);
            jw_buf_append_str(body, "\n");
        }
        return ready ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (strcmp(path, "/metrics") == 0) {
        *type = "text/plain; version=0.0.4; charset=utf-8";
        jw_metrics_render(body);
        return HTTP_STATUS_OK;
    }
    jw_buf_append_str(body, "not found\n");
    return HTTP_STATUS_NOT_FOUND;
}

/* GET /events: admission exactly as for a WebSocket upgrade (plus the subscription the query
 * names), then a session whose frames go out as SSE events. */
static int
start_sse(struct jw_gateway *gw, struct lws *wsi, struct jw_conn *conn)
{
    char why_buf[224];
    const char *why = why_buf;
    char *subscribe = NULL;
    unsigned flags = JW_ADMIT_SSE, status = 0;
    if (jw_drain_active(&gw->drain)) {
        why = "draining";
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (!status)
        status =
            jw_session_sse_query(gw->sessions, wsi, &subscribe, &flags, why_buf, sizeof(why_buf));
    if (!status)
        status = jw_session_admit(gw->sessions, wsi, flags, &why);
    struct jw_session *s = NULL;
    if (!status) {
        s = jw_session_open(gw->sessions, wsi, JW_TRANSPORT_SSE, &status);
        if (!s)
            why = status == 429 ? "too many connections from this address" : "token expired";
    }
    if (status) {
        free(subscribe);
        jw_http_count_refusal(status);
        jw_info("gateway", "refused SSE request (%u): %s", status, why);
        return send_refusal(wsi, conn, status, why);
    }
    conn->session = s;
    lws_set_opaque_user_data(wsi, &carried_a_stream);
    jw_session_sse_subscribe(s, subscribe);
    free(subscribe);

    /* The headers are read for the last time above: they are detached below. */
    unsigned char buf[LWS_PRE + 512];
    unsigned char *p = buf + LWS_PRE, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        lws_finalize_write_http_header(wsi, buf + LWS_PRE, &p, end))
        return -1; /* CLOSED_HTTP closes the session */
    /* lws_http_mark_sse() is for h2 streams (on HTTP/1.1 it logs an error); what it does for
     * HTTP/1.1 is to drop the headers and any pending timeout. */
    if (lws_get_network_wsi(wsi) != wsi) {
        lws_http_mark_sse(wsi);
    } else {
        lws_http_headers_detach(wsi);
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    }
    return 0;
}

int
jw_http_request(struct jw_gateway *gw, struct lws *wsi, struct jw_conn *conn, bool admin)
{
    if (lws_get_opaque_user_data(wsi) == &carried_a_stream)
        return -1; /* a request pipelined behind a stream, which never completes: hang up */
    bool too_long = false, head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    char *path = jw_header(wsi, head ? WSI_TOKEN_HEAD_URI : WSI_TOKEN_GET_URI, MAX_PATH, &too_long);
    if (!path) {
        if (too_long) {
            struct jw_buf body;
            jw_buf_init(&body, 64);
            jw_buf_append_str(&body, "URI too long\n");
            return send_reply(wsi, conn, 414, "text/plain; charset=utf-8", &body, false);
        }
        return lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL) ||
               lws_http_transaction_completed(wsi);
    }
    int rc;
    if (!admin && !head && strcmp(path, SSE_PATH) == 0) {
        rc = start_sse(gw, wsi, conn);
    } else {
        struct jw_buf body;
        const char *type;
        jw_buf_init(&body, 256);
        /* With admin_port set, health and metrics are answered there only. */
        bool here = admin || !gw->cfg->admin_port;
        unsigned status = here ? answer(gw, path, &body, &type) : answer(gw, "", &body, &type);
        rc = send_reply(wsi, conn, status, type, &body, head);
    }
    free(path);
    return rc;
}

int
jw_http_writeable(struct lws *wsi, struct jw_conn *conn)
{
    if (!conn->reply)
        return 0;
    unsigned char *out = jw_malloc(LWS_PRE + conn->reply_len);
    memcpy(out + LWS_PRE, conn->reply, conn->reply_len);
    int n = lws_write(wsi, out + LWS_PRE, conn->reply_len, LWS_WRITE_HTTP_FINAL);
    free(out);
    free(conn->reply);
    conn->reply = NULL;
    if (n < (int)conn->reply_len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int
jw_http_confirm_upgrade(struct jw_gateway *gw, struct lws *wsi, bool admin)
{
    const char *why = NULL;
    char *path = jw_header(wsi, WSI_TOKEN_GET_URI, MAX_PATH, NULL);
    bool ws = path && strcmp(path, WS_PATH) == 0;
    free(path);
    if (admin) { /* the admin port serves health and metrics only */
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "no WebSocket on the admin port");
        return 1;
    }
    if (!ws) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "WebSocket endpoint is " WS_PATH);
        return 1;
    }
    unsigned status = jw_drain_active(&gw->drain) ? HTTP_STATUS_SERVICE_UNAVAILABLE
                                                  : jw_session_admit(gw->sessions, wsi, 0, &why);
    if (status) {
        if (jw_drain_active(&gw->drain))
            why = "draining";
        jw_http_count_refusal(status);
        jw_info("gateway", "refused WebSocket upgrade (%u): %s", status, why);
        lws_return_http_status(wsi, status, why);
        return 1;
    }
    return 0;
}
