/* test_task_ood.c: each OOD kind shifts the property it claims, measured on generated
 * data with the independent reference parser: the mean strictly increases from the ID
 * test split through severities 1, 2, 3 (and length shifts leave the training range). */
#include <stdint.h>

#include "tests/check.h"
#include "tasks/task.h"
#include "tests/tasks/task_ref.h"

#define N 4000

/* The length of an instance: the longer operand (add/sub), A (mul/mod), the string. */
static double length_of(task_domain d, const ref_parts *p) {
    switch (d) {
    case TASK_DOMAIN_ADD:
    case TASK_DOMAIN_SUB:
        return p->len_a > p->len_b ? p->len_a : p->len_b;
    case TASK_DOMAIN_MUL:
    case TASK_DOMAIN_MOD:
        return p->len_a;
    default:
        return (double)strlen(p->payload);
    }
}

/* The value property each domain's ood_value claims to shift. */
static double value_of(task_domain d, const ref_parts *p, const char *answer) {
    size_t n = strlen(p->payload);
    double k = 0;
    switch (d) {
    case TASK_DOMAIN_ADD: /* carries per column the operands share */
        return (double)ref_carries(p->a, p->b) / (p->len_a < p->len_b ? p->len_a : p->len_b);
    case TASK_DOMAIN_SUB:
        return answer[0] == '-'; /* share of negative answers */
    case TASK_DOMAIN_MUL:
    case TASK_DOMAIN_MOD:
        return (double)p->b; /* the small operand */
    case TASK_DOMAIN_SORT:   /* share of letters */
        for (size_t i = 0; i < n; i++)
            k += p->payload[i] >= 'a' && p->payload[i] <= 'z';
        return k / (double)n;
    case TASK_DOMAIN_REV: /* share of symbols that are not lowercase */
        for (size_t i = 0; i < n; i++)
            k += !(p->payload[i] >= 'a' && p->payload[i] <= 'z');
        return k / (double)n;
    case TASK_DOMAIN_COUNT_CHAR: /* share of the counted letter */
        for (size_t i = 0; i < n; i++)
            k += p->payload[i] == p->letter;
        return k / (double)n;
    }
    return 0;
}

typedef struct {
    double mean_len, min_len, max_len, mean_value, mean_carries, mean_edit;
} stats;

static stats measure(task_domain d, task_split s, int sev) {
    stats st = {0, 1e9, -1e9, 0, 0, 0};
    task_gen *g = NULL;
    CHECK_EQ_INT(task_gen_new(&g, d, s, sev, 5), TASK_OK);
    int unparsed = 0;
    for (int i = 0; i < N; i++) {
        task_example ex;
        task_gen_next(g, &ex);
        ref_parts p;
        if (ref_parse(d, ex.canonical, &p) != 0) {
            unparsed++;
            continue;
        }
        double len = length_of(d, &p);
        st.mean_len += len / N;
        st.min_len = len < st.min_len ? len : st.min_len;
        st.max_len = len > st.max_len ? len : st.max_len;
        st.mean_value += value_of(d, &p, ex.answer) / N;
        if (d == TASK_DOMAIN_ADD) st.mean_carries += (double)ref_carries(p.a, p.b) / N;
        st.mean_edit += (double)ref_levenshtein(ex.question, ex.canonical) / N;
    }
    CHECK_EQ_INT(unparsed, 0);
    task_gen_free(g);
    return st;
}

int main(void) {
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        const char *name = task_domain_name(d);
        stats id = measure(d, TASK_SPLIT_TEST, 0);
        stats len[4], val[4], fmt[4];
        len[0] = val[0] = fmt[0] = id;
        for (int sev = 1; sev <= TASK_SEVERITY_MAX; sev++) {
            len[sev] = measure(d, TASK_SPLIT_OOD_LENGTH, sev);
            val[sev] = measure(d, TASK_SPLIT_OOD_VALUE, sev);
            fmt[sev] = measure(d, TASK_SPLIT_OOD_FORMAT, sev);
        }
        CHECK_MSG(id.mean_edit == 0.0, "%s: ID questions differ from canonical", name);
        for (int sev = 1; sev <= TASK_SEVERITY_MAX; sev++) {
            CHECK_MSG(len[sev].mean_len > len[sev - 1].mean_len,
                      "%s ood_length s%d: mean length %.3f not above %.3f", name, sev,
                      len[sev].mean_len, len[sev - 1].mean_len);
            CHECK_MSG(len[sev].min_len > id.max_len,
                      "%s ood_length s%d: length %.0f occurs in ID (max %.0f)", name, sev,
                      len[sev].min_len, id.max_len);
            CHECK_MSG(len[sev].min_len > len[sev - 1].max_len || sev == 1,
                      "%s ood_length s%d overlaps s%d", name, sev, sev - 1);
            CHECK_MSG(val[sev].mean_value > val[sev - 1].mean_value,
                      "%s ood_value s%d: mean value %.3f not above %.3f", name, sev,
                      val[sev].mean_value, val[sev - 1].mean_value);
            /* The value shift keeps the training lengths (it is not a length shift). */
            CHECK_MSG(val[sev].max_len <= id.max_len, "%s ood_value s%d: longer than ID", name,
                      sev);
            CHECK_MSG(fmt[sev].mean_edit > fmt[sev - 1].mean_edit,
                      "%s ood_format s%d: edit distance %.3f not above %.3f", name, sev,
                      fmt[sev].mean_edit, fmt[sev - 1].mean_edit);
            /* The format shift keeps the instance distribution. */
            CHECK_MSG(fabs(fmt[sev].mean_len - id.mean_len) < 0.2,
                      "%s ood_format s%d: length %.3f vs ID %.3f", name, sev, fmt[sev].mean_len,
                      id.mean_len);
        }
        if (d == TASK_DOMAIN_ADD)
            for (int sev = 1; sev <= TASK_SEVERITY_MAX; sev++)
                CHECK_MSG(val[sev].mean_carries > val[sev - 1].mean_carries,
                          "add ood_value s%d: carries %.3f not above %.3f", sev,
                          val[sev].mean_carries, val[sev - 1].mean_carries);
        if (d == TASK_DOMAIN_SUB)
            CHECK_MSG(id.mean_value == 0.0 && val[3].mean_value > 0.999,
                      "sub: negative share ID %.3f, s3 %.3f", id.mean_value, val[3].mean_value);
        if (d == TASK_DOMAIN_MUL || d == TASK_DOMAIN_MOD)
            CHECK_MSG(id.mean_value < 10 && val[1].mean_value > 10, "%s: small operand", name);
        fprintf(stderr,
                "%-6s length %.2f %.2f %.2f %.2f | value %.3f %.3f %.3f %.3f | "
                "format edit %.2f %.2f %.2f %.2f\n",
                name, id.mean_len, len[1].mean_len, len[2].mean_len, len[3].mean_len, id.mean_value,
                val[1].mean_value, val[2].mean_value, val[3].mean_value, id.mean_edit,
                fmt[1].mean_edit, fmt[2].mean_edit, fmt[3].mean_edit);
    }
    return check_report("test_task_ood");
}
