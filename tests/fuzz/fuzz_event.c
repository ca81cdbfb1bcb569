/* libFuzzer target: the Redis event parser (jw_event_parse), with an oracle.
 *
 * Input: the first byte splits it: channel = the next data[0] bytes (bounded by the input),
 * payload = the rest. Rules: prefix "ai:job:", max_payload_bytes 4096, user channels "rec:" and
 * "u/". Every verdict is compared with an independent classification of the message (the rules
 * of event.h written out, JSON judged by the reference validator of json_ref.h):
 *   - accepted: the frame completed with ,"seq":1} is UTF-8 and one JSON text, starts with
 *     {"type":"event", carries the payload byte for byte and "eventId":"<epoch>-<id>", names the
 *     kind, job and user the event has (checked with jansson when jansson can parse it), and
 *     conflates exactly when it is a progress event;
 *   - rejected: the verdict is one of the defect classes the message has.
 * Any disagreement aborts. No global state. */
#include <assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobwire/event.h"
#include "jobwire/utf8.h"
#include "json_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAYLOAD 4096
#define ID 1234567

static const struct jw_user_channel user_channels[] = {{"rec:", "recommendation"}, {"u/", "note"}};
static const struct jw_event_rules rules = {.prefix = "ai:job:",
                                            .max_payload_bytes = MAX_PAYLOAD,
                                            .user_channels = user_channels,
                                            .nuser_channels = 2};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_event: oracle failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* UTF-8 without C0 controls or DEL */
static bool
clean(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return ref_utf8_valid((const unsigned char *)s, n);
}

static bool
id_ok(const char *s, size_t n)
{
    return n >= 1 && n <= JW_ID_MAX && clean(s, n);
}

#define BIT(v) (1u << (v))

struct expect {
    unsigned verdicts; /* acceptable verdicts (bits); OK among them only when nothing is wrong */
    bool internal, user_channel;
    const char *kind; /* the kind segment or the user channel's kind */
    size_t kind_len;
    char job[JW_ID_MAX + 1], user[JW_ID_MAX + 1];
    bool has_job, has_user;
};

/* The id a member names (json_ref.h's rule) into out; classifies it. */
enum idc { ID_NONE, ID_FINE, ID_BAD, ID_NOT_AN_ID };

static enum idc
member_id(const char *payload, const struct ref_member *m, char *out)
{
    if (m->type == REF_NONE || m->type == REF_OTHER)
        return ID_NOT_AN_ID;
    char big[MAX_PAYLOAD + 1];
    size_t n = ref_member_id(payload, m, big, sizeof big);
    if (m->type == REF_NUMBER) {
        /* integer digits of any size are an id as written; a fraction or exponent is not */
        bool integer = true;
        for (size_t i = 0; i < m->len; i++)
            integer &= (payload[m->start + i] >= '0' && payload[m->start + i] <= '9') ||
                       (i == 0 && payload[m->start] == '-');
        if (!integer)
            return ID_NOT_AN_ID;
        if (!id_ok(payload + m->start, m->len))
            return ID_BAD; /* longer than JW_ID_MAX */
        memcpy(out, payload + m->start, m->len);
        out[m->len] = '\0';
        return ID_FINE;
    }
    /* a string: its decoded text must be an id (a lone surrogate decodes to nothing) */
    bool decodes = n > 0 || (m->len == 2);
    if (!decodes || !id_ok(big, n))
        return ID_BAD;
    memcpy(out, big, n);
    out[n] = '\0';
    return ID_FINE;
}

static void
classify(const char *ch, size_t clen, const char *payload, size_t plen, struct expect *e)
{
    memset(e, 0, sizeof *e);
    size_t pl = strlen(rules.prefix);
    bool job_channel = clen > pl && memcmp(ch, rules.prefix, pl) == 0;
    const char *job = NULL;
    size_t job_len = 0;
    if (job_channel) {
        const char *kind = ch + pl;
        const char *colon = memchr(kind, ':', clen - pl);
        size_t kl = colon ? (size_t)(colon - kind) : clen - pl;
        if (kl == 0) {
            e->verdicts = BIT(JW_EVENT_NOT_MATCHED);
            return;
        }
        if (!clean(kind, kl) || (colon && !id_ok(colon + 1, clen - pl - kl - 1))) {
            e->verdicts = BIT(JW_EVENT_BAD_ID);
            return;
        }
        e->kind = kind;
        e->kind_len = kl;
        if (colon) {
            job = colon + 1;
            job_len = clen - pl - kl - 1;
            memcpy(e->job, job, job_len);
            e->job[job_len] = '\0';
            e->has_job = true;
            if (kl == strlen(JW_INTERNAL_KIND) && memcmp(kind, JW_INTERNAL_KIND, kl) == 0) {
                e->internal = true;
                e->verdicts = BIT(JW_EVENT_OK);
                return;
            }
        }
    } else {
        const struct jw_user_channel *uc = NULL;
        for (size_t i = 0; i < rules.nuser_channels && !uc; i++)
            if (clen > strlen(user_channels[i].prefix) &&
                memcmp(ch, user_channels[i].prefix, strlen(user_channels[i].prefix)) == 0)
                uc = &user_channels[i];
        if (!uc) {
            e->verdicts = BIT(JW_EVENT_NOT_MATCHED);
            return;
        }
        size_t ul = clen - strlen(uc->prefix);
        if (!id_ok(ch + strlen(uc->prefix), ul)) {
            e->verdicts = BIT(JW_EVENT_BAD_ID);
            return;
        }
        e->user_channel = true;
        e->kind = uc->kind;
        e->kind_len = strlen(uc->kind);
        memcpy(e->user, ch + strlen(uc->prefix), ul);
        e->user[ul] = '\0';
        e->has_user = true;
    }
    if (plen > MAX_PAYLOAD) {
        e->verdicts = BIT(JW_EVENT_TOO_LARGE);
        return;
    }
    struct ref_member m[2] = {{.name = "jobId"}, {.name = "userId"}};
    int ok = ref_json(payload, plen, m, 2, 100000);
    if (ok != 1) {
        e->verdicts = BIT(JW_EVENT_NOT_JSON);
        return;
    }
    unsigned defects = 0;
    if (!e->user_channel) { /* on a user channel the channel names the user */
        enum idc u = member_id(payload, &m[1], e->user);
        if (u == ID_BAD)
            defects |= BIT(JW_EVENT_BAD_ID);
        e->has_user = u == ID_FINE;
    }
    if (!e->user_channel && !e->has_job) {
        enum idc j = member_id(payload, &m[0], e->job);
        if (j == ID_NOT_AN_ID)
            defects |= BIT(JW_EVENT_NO_JOB_ID);
        else if (j == ID_BAD)
            defects |= BIT(JW_EVENT_BAD_ID);
        e->has_job = j == ID_FINE;
    }
    e->verdicts = defects ? defects : BIT(JW_EVENT_OK);
}

/* The frame, completed, checked against the event and the message. */
static void
check_frame(const struct jw_event *ev, const struct expect *e, const char *ch, size_t clen,
            const char *payload, size_t plen)
{
    const struct jw_frame *f = ev->frame;
    CHECK(f != NULL && f->sequenced == 1 && f->refs == 1 && f->event_id == ID);
    CHECK(f->text[f->len] == '\0');
    char *text = malloc(f->len + 16);
    memcpy(text, f->text, f->len);
    memcpy(text + f->len, ",\"seq\":1}", 9);
    size_t len = f->len + 9;
    CHECK(jw_utf8_valid(text, len));
    CHECK(ref_json(text, len, NULL, 0, 100000) == 1);
    const char *head = "{\"type\":\"event\",\"kind\":";
    CHECK(len > strlen(head) && memcmp(text, head, strlen(head)) == 0);
    /* ... "payload":<payload>,"eventId":"<epoch>-<id>" */
    char tail[64];
    int tl = snprintf(tail, sizeof tail, ",\"eventId\":\"%s-%d\"", jw_event_epoch(), ID);
    CHECK(f->len >= (size_t)tl + plen + 11);
    CHECK(memcmp(f->text + f->len - tl, tail, (size_t)tl) == 0);
    CHECK(memcmp(f->text + f->len - tl - plen, payload, plen) == 0);
    CHECK(memcmp(f->text + f->len - tl - plen - 11, ",\"payload\":", 11) == 0);
    /* conflation: progress events of their job only */
    if (ev->kind == JW_KIND_PROGRESS)
        CHECK(f->conflates && ev->job_id && strcmp(f->conflates, ev->job_id) == 0);
    else
        CHECK(f->conflates == NULL);
    /* the names, where jansson can read the frame (no NUL in keys, no huge reals, no lone
     * surrogates) */
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
    if (j) {
        json_t *k = json_object_get(j, "kind");
        CHECK(json_is_string(k) && json_string_length(k) >= 1);
        if (ref_utf8_valid((const unsigned char *)e->kind, e->kind_len))
            CHECK(json_string_length(k) == e->kind_len &&
                  memcmp(json_string_value(k), e->kind, e->kind_len) == 0);
        json_t *jid = json_object_get(j, "jobId"), *uid = json_object_get(j, "userId");
        CHECK(ev->job_id ? json_is_string(jid) && strcmp(json_string_value(jid), ev->job_id) == 0
                         : jid == NULL);
        CHECK(ev->user_id ? json_is_string(uid) && strcmp(json_string_value(uid), ev->user_id) == 0
                          : uid == NULL);
        json_t *c = json_object_get(j, "channel");
        CHECK(json_is_string(c));
        if (ref_utf8_valid((const unsigned char *)ch, clen)) /* else U+FFFD replaced bytes */
            CHECK(json_string_length(c) == clen && memcmp(json_string_value(c), ch, clen) == 0);
        CHECK(json_number_value(json_object_get(j, "seq")) == 1);
        json_decref(j);
    }
    free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jw_event *ev = (void *)1;
    size_t clen, plen;
    char *channel, *payload;

    if (size < 1)
        return 0;
    clen = data[0] < size - 1 ? data[0] : size - 1;
    plen = size - 1 - clen;
    /* exact-size copies: neither part is NUL-terminated on the wire */
    channel = malloc(clen ? clen : 1);
    payload = malloc(plen ? plen : 1);
    memcpy(channel, data + 1, clen);
    memcpy(payload, data + 1 + clen, plen);
    struct expect e;
    classify(channel, clen, payload, plen, &e);
    enum jw_event_verdict v = jw_event_parse(&rules, channel, clen, payload, plen, ID, &ev);
    if (!(e.verdicts & BIT(v))) {
        fprintf(stderr, "fuzz_event: verdict %s, expected one of:", jw_event_verdict_name(v));
        for (int i = 0; i < JW_EVENT__VERDICT_COUNT; i++)
            if (e.verdicts & BIT(i))
                fprintf(stderr, " %s", jw_event_verdict_name((enum jw_event_verdict)i));
        fprintf(stderr, "\n");
        abort();
    }
    if (v == JW_EVENT_OK) {
        CHECK(ev && ev->refs == 1 && ev->id == ID && ev->msg.type == JW_MSG_EVENT);
        if (e.internal) {
            /* jobwire's own channel (markers, probes) yields an event without a frame */
            CHECK(ev->kind == JW_KIND_INTERNAL && ev->frame == NULL && ev->user_id == NULL);
            CHECK(strcmp(ev->job_id, e.job) == 0);
        } else {
            CHECK(ev->kind != JW_KIND_INTERNAL);
            if (e.user_channel)
                CHECK(ev->kind == JW_KIND_OTHER);
            else
                CHECK(ev->kind == jw_kind_from_name(e.kind, e.kind_len));
            CHECK(e.has_job ? ev->job_id && strcmp(ev->job_id, e.job) == 0 : ev->job_id == NULL);
            CHECK(e.has_user ? ev->user_id && strcmp(ev->user_id, e.user) == 0
                             : ev->user_id == NULL);
            check_frame(ev, &e, channel, clen, payload, plen);
        }
        jw_event_unref(ev);
    } else {
        CHECK(ev == NULL);
    }
    free(channel);
    free(payload);
    return 0;
}
