/* test_bases.c: every shipped base in experiments/bases/ loads, carries its name, commit, thread
 * count and recorded figures, and is still the model those figures describe: a fresh measurement
 * on other questions agrees with them within sampling error. The verdict on the conditions of
 * docs/bases.md is checked on hand-made figures; the shipped bases' verdicts are printed (and
 * stated in docs/bases.md), not assumed. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness/run/bases.h"
#include "tests/check.h"

#define N 48 /* questions per domain in the fresh measurement */

/* Three binomial standard errors of a share p measured on N questions, plus 0.03 for the
 * recorded figure's own error (200 questions). */
static double tol(double p) {
    return 3.0 * sqrt(p * (1.0 - p) / N + 0.25 / N / 16.0) + 0.03;
}

/* The per-question record of a measurement adds up to its figures, question by question. */
static void check_samples(const char *dn, const bases_figures *f, const bases_sample *s) {
    int demo = 0, exact = 0, note_ok = 0, ok = 0, one = 0, ff = 0;
    for (int i = 0; i < N; i++) {
        CHECK_MSG(s[i].question[0] && s[i].answer[0], "%s sample %d: empty question or answer", dn,
                  i);
        CHECK_MSG(s[i].note >= 0 && s[i].note <= 100, "%s sample %d: note %d", dn, i, s[i].note);
        /* a right answer from the student prompt starts its completion */
        if (s[i].correct)
            CHECK_MSG(!strncmp(s[i].completion, s[i].answer, strlen(s[i].answer)),
                      "%s: '%s' right for '%s'?", dn, s[i].completion, s[i].answer);
        demo += s[i].demo_correct, exact += s[i].note_exact, note_ok += s[i].note_correct;
        ok += s[i].correct, ff += s[i].format_failure;
        one += !s[i].format_failure && fabs(s[i].confidence - 1.0) < 1e-9;
    }
    CHECK_MSG(fabs(f->demo_acc - (double)demo / N) < 1e-12, "%s: demo %.4f vs samples %d/%d", dn,
              f->demo_acc, demo, N);
    CHECK_MSG(fabs(f->note_exact - (double)exact / N) < 1e-12, "%s: note= vs samples", dn);
    CHECK_MSG(fabs(f->note_acc - (double)note_ok / N) < 1e-12, "%s: note acc vs samples", dn);
    CHECK_MSG(fabs(f->acc - (double)ok / N) < 1e-12, "%s: acc vs samples", dn);
    CHECK_MSG(fabs(f->conf_one - (double)one / N) < 1e-12, "%s: =1.00 vs samples", dn);
    CHECK_MSG(fabs(f->format_fail - (double)ff / N) < 1e-12, "%s: format failures vs samples", dn);
}

static void check_base(tw_ctx *ctx, const char *path) {
    gpt *m = NULL;
    bases_info info;
    char err[2048];
    int rc = bases_open(ctx, path, 1, &m, &info, err, sizeof err);
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    if (rc) return;
    CHECK_MSG(info.name[0] && info.commit[0], "%s: no base_name or base_commit attribute", path);
    CHECK_MSG(info.threads >= 1, "%s: threads %d", path, info.threads);
    CHECK_MSG(info.has_figures, "%s: no recorded figures", path);
    CHECK_MSG(info.step > 0, "%s: trainer step %lld", path, (long long)info.step);
    int skills = 0;
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        skills += (info.skill_domains >> d) & 1;
    CHECK_MSG(skills >= 4, "%s: %d skill domains, at least 4 wanted", path, skills);
    bases_figures now[TASK_N_DOMAINS];
    for (int d = 0; info.has_figures && d < TASK_N_DOMAINS; d++) {
        const char *dn = task_domain_name((task_domain)d);
        const bases_figures *r = &info.figures[d], *f = &now[d];
        CHECK_EQ_INT(r->n, 200);
        bases_sample samples[N];
        CHECK_MSG(bases_measure(m, (task_domain)d, N, 77000 + (uint64_t)d, &now[d], samples) ==
                      TW_OK,
                  "%s", tw_errmsg(ctx));
        check_samples(dn, &now[d], samples);
        fprintf(stderr,
                "%s %-5s now demo %.3f note %.3f acc %.3f conf=1.00 %.3f | recorded %.3f %.3f %.3f "
                "%.3f\n",
                path, dn, f->demo_acc, f->note_exact, f->acc, f->conf_one, r->demo_acc,
                r->note_exact, r->acc, r->conf_one);
        CHECK_MSG(fabs(f->demo_acc - r->demo_acc) <= tol(r->demo_acc),
                  "%s %s: demo %.3f, recorded %.3f", path, dn, f->demo_acc, r->demo_acc);
        CHECK_MSG(fabs(f->note_exact - r->note_exact) <= tol(r->note_exact),
                  "%s %s: note %.3f, recorded %.3f", path, dn, f->note_exact, r->note_exact);
        CHECK_MSG(fabs(f->acc - r->acc) <= tol(r->acc), "%s %s: acc %.3f, recorded %.3f", path, dn,
                  f->acc, r->acc);
        CHECK_MSG(fabs(f->conf_one - r->conf_one) <= tol(r->conf_one),
                  "%s %s: conf=1.00 %.3f, recorded %.3f", path, dn, f->conf_one, r->conf_one);
    }
    if (info.has_figures) {
        bases_verdict v = bases_judge(info.figures, info.skill_domains);
        fprintf(stderr, "%s: (a) %s (b) %s, %d in band (c) %s\n", path, v.a ? "yes" : "no",
                v.b ? "yes" : "no", v.b_in_band, v.c ? "yes" : "no");
    }
    gpt_free(m);
}

/* bases_judge on hand-made figures: each condition and its masks. */
static void check_judge(void) {
    bases_figures f[TASK_N_DOMAINS];
    for (int d = 0; d < TASK_N_DOMAINS; d++)
        f[d] = (bases_figures){.n = 200, .demo_acc = 1, .note_exact = 1, .acc = 0.4, .conf_one = 1};
    const unsigned skill = 0xF; /* add, sub, mul, mod */
    bases_verdict v = bases_judge(f, skill);
    CHECK(v.a && v.b && v.c && v.b_in_band == 4);
    f[5].demo_acc = 0.94; /* rev: not a skill domain, still part of (a) */
    f[2].acc = 0.61;      /* mul: above the band */
    f[6].acc = 0.10;      /* count: not a skill domain, ignored by (b) */
    f[0].conf_one = 0.90; /* add */
    f[1].note_exact = 0.949;
    v = bases_judge(f, skill);
    CHECK(!v.a && v.a_demo_fail == 1u << 5 && v.a_note_fail == 1u << 1);
    CHECK(!v.b && v.b_in_band == 3 && v.b_out == 1u << 2);
    CHECK(!v.c && v.c_fail == 1u);
    f[2].acc = 0.60; /* the band's edges are inside */
    f[3].acc = 0.25;
    CHECK(bases_judge(f, skill).b);
}

int main(void) {
    check_judge();
    tw_set_num_threads(1);
    tw_ctx *ctx = NULL;
    char e[512];
    CHECK(tw_ctx_new(&ctx, TW_DEVICE_CPU, e, sizeof e) == TW_OK);
    DIR *dp = opendir(BASES_DIR);
    CHECK_MSG(dp != NULL, "cannot open %s", BASES_DIR);
    int found = 0;
    struct dirent *ent;
    while (dp && (ent = readdir(dp))) {
        size_t len = strlen(ent->d_name);
        if (len < 4 || strcmp(ent->d_name + len - 3, ".h5")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", BASES_DIR, ent->d_name);
        check_base(ctx, path);
        found++;
    }
    if (dp) closedir(dp);
    CHECK_MSG(found >= 1, "no shipped base in %s", BASES_DIR);
    /* A missing file is refused with its name in the message. */
    gpt *m = NULL;
    bases_info info;
    char err[2048];
    CHECK(bases_open(ctx, BASES_DIR "/no-such-base.h5", 1, &m, &info, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "no-such-base.h5") != NULL, "%s", err);
    tw_ctx_free(ctx);
    return check_report("test_bases");
}
