/* test_bases.c: every shipped base in experiments/bases/ loads, carries its name, commit, thread
 * count and recorded figures, and still meets the base conditions on a small sample
 * (docs/bases.md): (a) it follows privileged context on every domain, (b) it partly solves each
 * of its skill domains, (c) it states 1.00 as an SFT model does. The sample is small (N per
 * domain), so the bounds are the documented ones widened by about three binomial standard
 * errors; the full-size figures (200 questions) are in docs/bases.md. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "bases.h"
#include "check.h"

#define N 48
#define FOLLOW_MIN 0.88           /* (a) >= 0.95 on 200 */
#define SKILL_LO 0.12             /* (b) 0.25 .. 0.60 on 200 */
#define SKILL_HI 0.75
#define CONF_ONE_MIN 0.90         /* (c) */

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
    int skills = 0;
    for (int d = 0; d < TASK_N_DOMAINS; d++) {
        const char *dn = task_domain_name((task_domain)d);
        int skill = (info.skill_domains >> d) & 1;
        skills += skill;
        /* The recorded figures meet the conditions as documented. */
        if (info.has_figures) {
            const bases_figures *r = &info.figures[d];
            CHECK_MSG(r->demo_acc >= 0.95 && r->note_exact >= 0.95, "%s %s recorded: demo %.3f note %.3f", path,
                      dn, r->demo_acc, r->note_exact);
            if (skill)
                CHECK_MSG(r->acc >= 0.25 && r->acc <= 0.60, "%s %s recorded: acc %.3f", path, dn, r->acc);
        }
        /* And the model still does, measured now on a small sample of other questions. */
        bases_figures f;
        CHECK_MSG(bases_measure(m, (task_domain)d, N, 77000 + (uint64_t)d, &f) == TW_OK, "%s", tw_errmsg(ctx));
        fprintf(stderr, "%s %-5s demo %.3f note %.3f acc %.3f conf=1.00 %.3f\n", path, dn, f.demo_acc,
                f.note_exact, f.acc, f.conf_one);
        CHECK_MSG(f.demo_acc >= FOLLOW_MIN, "%s %s: demo-following %.3f", path, dn, f.demo_acc);
        CHECK_MSG(f.note_exact >= FOLLOW_MIN, "%s %s: note exact %.3f", path, dn, f.note_exact);
        if (skill) {
            CHECK_MSG(f.acc >= SKILL_LO && f.acc <= SKILL_HI, "%s %s: accuracy without a demo %.3f", path, dn,
                      f.acc);
            CHECK_MSG(f.conf_one >= CONF_ONE_MIN, "%s %s: states 1.00 on %.3f", path, dn, f.conf_one);
        }
    }
    CHECK_MSG(skills >= 4, "%s: %d skill domains, at least 4 wanted", path, skills);
    gpt_free(m);
}

int main(void) {
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
    /* A file that is not a base is refused with its name in the message. */
    gpt *m = NULL;
    bases_info info;
    char err[2048];
    CHECK(bases_open(ctx, BASES_DIR "/no-such-base.h5", 1, &m, &info, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "no-such-base.h5") != NULL, "%s", err);
    tw_ctx_free(ctx);
    return check_report("test_bases");
}
