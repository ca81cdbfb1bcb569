/*
 * Prometheus text exposition of the metrics declared in metrics.h. HELP and TYPE are written
 * once per metric family: labelled series of one family are adjacent in JW_METRICS.
 */
#include "jobwire/metrics.h"

#include <string.h>

_Atomic int64_t jw_metric_values[JW_M__COUNT];

struct metric_desc {
    const char *type;
    const char *name;
    const char *labels;
    const char *help;
};

static const struct metric_desc descs[JW_M__COUNT] = {
#define JW_METRIC_DESC(id, type, name, labels, help) [JW_M_##id] = {#type, name, labels, help},
    JW_METRICS(JW_METRIC_DESC)
#undef JW_METRIC_DESC
};

void
jw_metrics_render(struct jw_buf *out)
{
    for (int i = 0; i < JW_M__COUNT; i++) {
        const struct metric_desc *d = &descs[i];
        if (i == 0 || strcmp(descs[i - 1].name, d->name) != 0) {
            jw_buf_append_str(out, "# HELP ");
            jw_buf_append_str(out, d->name);
            jw_buf_append_str(out, " ");
            jw_buf_append_str(out, d->help);
            jw_buf_append_str(out, "\n# TYPE ");
            jw_buf_append_str(out, d->name);
            jw_buf_append_str(out, " ");
            jw_buf_append_str(out, d->type);
            jw_buf_append_str(out, "\n");
        }
        jw_buf_append_str(out, d->name);
        if (d->labels[0]) {
            jw_buf_append_str(out, "{");
            jw_buf_append_str(out, d->labels);
            jw_buf_append_str(out, "}");
        }
        int64_t v = jw_metric_get((enum jw_metric_id)i);
        if (v < 0)
            v = 0;
        jw_buf_append_str(out, " ");
        jw_buf_append_u64(out, (unsigned long long)v);
        jw_buf_append_str(out, "\n");
    }
}
