/* bases: the shipped base models (experiments/bases/, docs/bases.md). A shipped base is the
 * caopd-checkpoint that a base-only `caopd run` wrote, with root attributes added by
 * bases_pack: its name, the commit and thread count that made it, and the figures measured on
 * it. Any spec loads it through base.checkpoint. This module opens one, measures the conditions
 * a base must meet (following privileged context, partial skill, SFT-style confidence), and
 * packs a run's checkpoint into a shipped base. */
#ifndef CAOPD_BASES_H
#define CAOPD_BASES_H

#include <stdint.h>

#include "harness/trainer/evaluate.h"
#include "harness/model/gpt.h"
#include "tasks/task.h"
#include "harness/torch/tw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one domain shows on n held-out test questions (greedy decoding). */
typedef struct bases_figures {
    int n;              /* questions behind each share */
    double demo_acc;    /* answer right given a demo ending "Confidence: 1.00" (the sdft teacher's
                           context, tmpl_teacher_demo without a note) */
    double note_exact;  /* given the CaOPD teacher context (demo and note both carrying P, P a
                           pseudo-random hundredth), the stated confidence is exactly P */
    double note_acc;    /* and the answer is right in that context */
    double acc;         /* answer right from the student prompt alone (no demo) */
    double mean_conf;   /* mean greedy confidence from the student prompt */
    double conf_one;    /* share of student-prompt answers stating exactly 1.00 */
    double format_fail; /* share of student-prompt completions with a format failure */
} bases_figures;

/* The attributes of a shipped base. */
typedef struct bases_info {
    gpt_config cfg;
    int64_t step;           /* trainer/step: the base's optimizer steps */
    int threads;            /* libtorch threads of the run that made it (from its spec) */
    unsigned skill_domains; /* bit (1u << d) per domain of its student-format pairs (the spec's
                               base.student_domains, else base.domains, else all): the domains
                               it is meant to partly solve */
    char name[64];          /* base_name; "" for an unpacked checkpoint */
    char commit[64];        /* base_commit: the commit whose caopd run made it; "" when unpacked */
    int has_figures;        /* 1 when the file carries recorded figures */
    bases_figures figures[TASK_N_DOMAINS]; /* recorded at packing (valid when has_figures) */
} bases_info;

/* The conditions of docs/bases.md, judged from figures: (a) demo_acc >= 0.95 and note_exact >= 0.95
 * on every domain; (b) acc in [0.25, 0.60] on at least 4 of the skill domains; (c) conf_one >= 0.95
 * on every skill domain. Each mask has bit (1u << d) for the domains that fail it (for (b): the
 * skill domains outside the band). */
typedef struct bases_verdict {
    int a, b, c;          /* 1 when the condition holds */
    unsigned a_demo_fail; /* demo_acc < 0.95 */
    unsigned a_note_fail; /* note_exact < 0.95 */
    int b_in_band;        /* skill domains with acc in [0.25, 0.60] */
    unsigned b_out;       /* skill domains outside the band */
    unsigned c_fail;      /* skill domains with conf_one < 0.95 */
} bases_verdict;

bases_verdict bases_judge(const bases_figures f[TASK_N_DOMAINS], unsigned skill_domains);

/* Opens the caopd-checkpoint at path, builds its student model on ctx into *model (owned by the
 * caller, gpt_free) with a generator seeded by seed for its (unused) initialization, and fills
 * *info. 0, or -1 with a message naming the file in err. */
int bases_open(tw_ctx *ctx, const char *path, uint64_t seed, gpt **model, bases_info *info,
               char *err, size_t errlen);

/* One question of a measurement, the three ways it was asked (greedy completions). */
typedef struct bases_sample {
    char question[TASK_QUESTION_CAP];
    char answer[TASK_ANSWER_CAP];        /* the reference */
    char demo_completion[EVAL_TEXT_CAP]; /* given the demo (no note) */
    int demo_correct;
    int note;                            /* the note's value P in hundredths */
    char note_completion[EVAL_TEXT_CAP]; /* given the demo and the note */
    int note_exact, note_correct;
    char completion[EVAL_TEXT_CAP]; /* from the student prompt alone */
    int correct, format_failure;
    double confidence; /* greedy readout of completion */
} bases_sample;

/* Measures domain d of model m on n held-out test questions drawn with seed; when samples is not
 * NULL it gets the n questions one by one (the figures are their shares). TW_OK, or the
 * context's status with its message. */
tw_status bases_measure(gpt *m, task_domain d, int n, uint64_t seed, bases_figures *out,
                        bases_sample *samples);

/* The seed bases_pack and `caopd bases --measure` draw the questions of domain d with. */
uint64_t bases_measure_seed(task_domain d);

/* Writes out_path: the checkpoint at ckpt_path with the attributes base_name = name,
 * base_commit = commit, base_threads (from its spec) and the figures of every domain measured
 * on n questions (base_figures/<domain>/<field>). The write is atomic; ckpt_path is untouched.
 * threads: libtorch threads for the measurement. 0, or -1 with the message in err. */
int bases_pack(const char *ckpt_path, const char *out_path, const char *name, const char *commit,
               int n, int threads, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
