/* snapshot: trainer state <-> checkpoint contents. Copies the student, the EMA teacher, the
 * AdamW moments and counters and the rollout RNG out of libtorch into a ckpt_snapshot (owned
 * host buffers, so training goes on while the I/O thread writes), and loads them back from a
 * ckpt_reader for an exact resume. Group layout: docs/results.md ("Checkpoint file"). */
#ifndef CAOPD_SNAPSHOT_H
#define CAOPD_SNAPSHOT_H

#include <stddef.h>

#include "checkpoints/ckpt.h"
#include "harness/model/gpt.h"
#include "harness/trainer/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SNAP_CHECKPOINT_VERSION 1 /* format_version of caopd-checkpoint files */

/* Adds model m's config as attributes of <group> and every parameter as the float32 dataset
 * <group>/<gpt_param_name> (shape of the parameter). Returns 0 or -1 with a message in err. */
int snap_add_model(ckpt_snapshot *s, const char *group, gpt *m, char *err, size_t errlen);

/* Loads <group>/<name> of every parameter of m from r. The stored config (attributes of
 * group) must equal m's; a mismatch, a missing parameter or a wrong shape/type is an error
 * naming the file object and what to do. Returns 0 or -1 (err). */
int snap_load_model(ckpt_reader *r, const char *group, gpt *m, char *err, size_t errlen);

/* The model config stored under `group` (vocab, block_size, n_layer, n_head, n_embd), so that
 * a caller can build the model a checkpoint holds. 0, or -1 with the message in err. */
int snap_read_config(ckpt_reader *r, const char *group, gpt_config *out, char *err, size_t errlen);

/* Adds the whole trainer: "student", "teacher" (snap_add_model), "optimizer/m/<name>",
 * "optimizer/v/<name>", "rng/trainer" (uint8 bytes of the generator state), and the
 * attributes "optimizer" step_count, "trainer" step and sched. */
int snap_add_trainer(ckpt_snapshot *s, trainer *t, char *err, size_t errlen);

/* Restores everything snap_add_trainer wrote into t (whose params are already set for the
 * stage: the schedule counter is restored after them). */
int snap_load_trainer(ckpt_reader *r, trainer *t, char *err, size_t errlen);

/* Zeroes the AdamW moments and step count (a fresh optimizer). */
int snap_reset_optimizer(trainer *t, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
