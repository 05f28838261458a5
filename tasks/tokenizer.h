/* tokenizer.h: the fixed character vocabulary of every model in caopd-harness.
 * Ids: PAD=0, BOS=1, EOS=2, '\n'=3, then printable ASCII 32..126 as ids 4..98.
 * Stateless and thread-safe; a character outside the vocabulary is an error, never replaced. */
#ifndef CAOPD_TASKS_TOKENIZER_H
#define CAOPD_TASKS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOK_PAD 0             /* padding; never produced by tok_encode */
#define TOK_BOS 1             /* begin of sequence */
#define TOK_EOS 2             /* end of sequence */
#define TOK_NEWLINE 3         /* '\n' */
#define TOK_FIRST_PRINTABLE 4 /* id of ' ' (32); printable c has id c - 28 */
#define TOK_N_SPECIAL 3       /* PAD, BOS, EOS */
#define TOK_VOCAB_SIZE 99     /* 3 special + '\n' + 95 printable */

typedef enum {
    TOK_OK = 0,
    TOK_ERR_CHAR = -1,  /* a byte outside the vocabulary in the text */
    TOK_ERR_ID = -2,    /* an id outside [0, TOK_VOCAB_SIZE), or a special id not allowed */
    TOK_ERR_SPACE = -3, /* the output buffer is too small */
} tok_status;

/* tok_decode flags. */
#define TOK_DECODE_SKIP_SPECIAL 1u /* drop PAD/BOS/EOS instead of failing on them */

/* Id of byte c, or -1 when c is not in the vocabulary. */
int tok_char_to_id(unsigned char c);

/* Byte of a text id ('\n' or printable), or -1 for a special or out-of-range id. */
int tok_id_to_char(int32_t id);

/* 1 for PAD, BOS and EOS, else 0. */
int tok_is_special(int32_t id);

/* Encodes text[0..len) into ids[0..cap), one id per byte, with no BOS/EOS added.
 * On success *n_out = len. Errors: TOK_ERR_CHAR (names the byte and its offset),
 * TOK_ERR_SPACE (len > cap). ids and n_out are borrowed; n_out may be NULL. On error
 * the contents of ids are unspecified and *n_out is untouched. */
int tok_encode(const char *text, size_t len, int32_t *ids, size_t cap, size_t *n_out);

/* Checks that every byte of text[0..len) is in the vocabulary (TOK_OK or TOK_ERR_CHAR). */
int tok_check(const char *text, size_t len);

/* Decodes ids[0..n) into text, NUL-terminated, needing n + 1 bytes at most.
 * Special ids are TOK_ERR_ID unless flags has TOK_DECODE_SKIP_SPECIAL (then dropped).
 * On success *len_out (may be NULL) is the text length without the NUL.
 * Errors: TOK_ERR_ID, TOK_ERR_SPACE (cap too small for the text and its NUL); on error
 * the contents of text are unspecified. */
int tok_decode(const int32_t *ids, size_t n, char *text, size_t cap, size_t *len_out,
               unsigned flags);

/* Writes a printable name of id into out (at most 8 bytes with the NUL):
 * "<pad>", "<bos>", "<eos>", "\\n" (backslash n), the character itself, or "<?>"
 * for an id outside the vocabulary. Returns out. */
char *tok_describe(int32_t id, char out[8]);

/* Static text of a tok_status ("ok", "character outside the vocabulary", ...). */
const char *tok_status_str(int rc);

/* The message of this thread's last failed call into the tasks library (never NULL). */
const char *tok_errmsg(void);

#endif
