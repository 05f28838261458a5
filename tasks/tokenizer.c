/* tokenizer.c: byte <-> id mapping for the fixed character vocabulary (see tokenizer.h).
 * Pure arithmetic, no tables, no allocation. */
#include <string.h>

#include "tasks/tasks_internal.h"
#include "tasks/tokenizer.h"

int tok_char_to_id(unsigned char c) {
    if (c == '\n') return TOK_NEWLINE;
    if (c >= 32 && c <= 126) return TOK_FIRST_PRINTABLE + (c - 32);
    return -1;
}

int tok_id_to_char(int32_t id) {
    if (id == TOK_NEWLINE) return '\n';
    if (id >= TOK_FIRST_PRINTABLE && id < TOK_VOCAB_SIZE) return 32 + (id - TOK_FIRST_PRINTABLE);
    return -1;
}

int tok_is_special(int32_t id) {
    return id == TOK_PAD || id == TOK_BOS || id == TOK_EOS;
}

static int char_error(const char *text, size_t i) {
    unsigned char c = (unsigned char)text[i];
    tasks__set_error("byte 0x%02x at offset %zu is outside the vocabulary (allowed: '\\n' and "
                     "printable ASCII 32..126); fix the text, characters are never replaced",
                     c, i);
    return TOK_ERR_CHAR;
}

int tok_check(const char *text, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (tok_char_to_id((unsigned char)text[i]) < 0) return char_error(text, i);
    return TOK_OK;
}

int tok_encode(const char *text, size_t len, int32_t *ids, size_t cap, size_t *n_out) {
    if (len > cap) {
        tasks__set_error("tok_encode: %zu bytes need %zu ids but the buffer holds %zu", len, len,
                         cap);
        return TOK_ERR_SPACE;
    }
    for (size_t i = 0; i < len; i++) {
        int id = tok_char_to_id((unsigned char)text[i]);
        if (id < 0) return char_error(text, i);
        ids[i] = id;
    }
    if (n_out) *n_out = len;
    return TOK_OK;
}

int tok_decode(const int32_t *ids, size_t n, char *text, size_t cap, size_t *len_out,
               unsigned flags) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        int c = tok_id_to_char(id);
        if (c < 0) {
            if (tok_is_special(id) && (flags & TOK_DECODE_SKIP_SPECIAL)) continue;
            tasks__set_error("tok_decode: id %ld at position %zu is %s", (long)id, i,
                             tok_is_special(id)
                                 ? "a special token (pass TOK_DECODE_SKIP_SPECIAL to drop it)"
                                 : "outside the vocabulary [0, 99)");
            return TOK_ERR_ID;
        }
        if (len + 1 >= cap) {
            tasks__set_error("tok_decode: the text buffer of %zu bytes is too small", cap);
            return TOK_ERR_SPACE;
        }
        text[len++] = (char)c;
    }
    if (cap == 0) {
        tasks__set_error("tok_decode: the text buffer of 0 bytes cannot hold the NUL");
        return TOK_ERR_SPACE;
    }
    text[len] = '\0';
    if (len_out) *len_out = len;
    return TOK_OK;
}

char *tok_describe(int32_t id, char out[8]) {
    static const char *const special[] = {"<pad>", "<bos>", "<eos>"};
    if (id >= 0 && id < TOK_N_SPECIAL) {
        strcpy(out, special[id]);
    } else if (id == TOK_NEWLINE) {
        strcpy(out, "\\n");
    } else if (id > TOK_NEWLINE && id < TOK_VOCAB_SIZE) {
        out[0] = (char)tok_id_to_char(id);
        out[1] = '\0';
    } else {
        strcpy(out, "<?>");
    }
    return out;
}

const char *tok_status_str(int rc) {
    switch (rc) {
    case TOK_OK:
        return "ok";
    case TOK_ERR_CHAR:
        return "character outside the vocabulary";
    case TOK_ERR_ID:
        return "token id not allowed here";
    case TOK_ERR_SPACE:
        return "output buffer too small";
    default:
        return "unknown tokenizer status";
    }
}

const char *tok_errmsg(void) {
    return tasks__errmsg();
}
