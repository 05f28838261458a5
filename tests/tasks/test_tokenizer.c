/* test_tokenizer.c: the fixed vocabulary (ids, size), encode/decode round trips, and
 * clear errors for bytes outside the vocabulary, special ids and small buffers. */
#include <stdint.h>

#include "tests/check.h"
#include "tasks/tokenizer.h"

int main(void) {
    CHECK_EQ_INT(TOK_VOCAB_SIZE, 99);
    CHECK_EQ_INT(TOK_PAD, 0);
    CHECK_EQ_INT(TOK_BOS, 1);
    CHECK_EQ_INT(TOK_EOS, 2);
    CHECK_EQ_INT(tok_char_to_id('\n'), 3);
    CHECK_EQ_INT(tok_char_to_id(' '), 4);
    CHECK_EQ_INT(tok_char_to_id('0'), 4 + ('0' - 32));
    CHECK_EQ_INT(tok_char_to_id('~'), 98);
    CHECK_EQ_INT(tok_char_to_id('\t'), -1);
    CHECK_EQ_INT(tok_char_to_id('\r'), -1);
    CHECK_EQ_INT(tok_char_to_id(127), -1);
    CHECK_EQ_INT(tok_char_to_id(0), -1);
    CHECK_EQ_INT(tok_char_to_id(0xC3), -1);

    /* Every id maps back and forth; the map is a bijection on the text ids. */
    int bijective = 1;
    for (int id = 0; id < TOK_VOCAB_SIZE; id++) {
        int c = tok_id_to_char(id);
        if (id < TOK_N_SPECIAL)
            bijective &= c == -1 && tok_is_special(id);
        else
            bijective &= c >= 0 && tok_char_to_id((unsigned char)c) == id && !tok_is_special(id);
    }
    CHECK(bijective);
    CHECK_EQ_INT(tok_id_to_char(99), -1);
    CHECK_EQ_INT(tok_id_to_char(-1), -1);

    /* Round trip of all 96 text characters. */
    char all[97];
    int k = 0;
    all[k++] = '\n';
    for (int c = 32; c <= 126; c++)
        all[k++] = (char)c;
    all[k] = '\0';
    int32_t ids[128];
    size_t n = 0;
    CHECK_EQ_INT(tok_encode(all, 96, ids, 128, &n), TOK_OK);
    CHECK_EQ_INT(n, 96);
    char back[128];
    size_t len = 0;
    CHECK_EQ_INT(tok_decode(ids, n, back, sizeof back, &len, 0), TOK_OK);
    CHECK_EQ_INT(len, 96);
    CHECK_EQ_STR(back, all);

    /* Outside the vocabulary: an error naming the byte and offset, never a substitute. */
    CHECK_EQ_INT(tok_encode("12\t3", 4, ids, 128, &n), TOK_ERR_CHAR);
    CHECK(strstr(tok_errmsg(), "0x09") && strstr(tok_errmsg(), "offset 2"));
    CHECK_EQ_INT(tok_encode("caf\xc3\xa9", 5, ids, 128, &n), TOK_ERR_CHAR);
    CHECK(strstr(tok_errmsg(), "0xc3") != NULL);
    CHECK_EQ_INT(tok_check("abc", 3), TOK_OK);
    CHECK_EQ_INT(tok_check("a\0c", 3), TOK_ERR_CHAR);
    CHECK_EQ_INT(tok_encode("abcdef", 6, ids, 5, &n), TOK_ERR_SPACE);
    n = 77;
    CHECK_EQ_INT(tok_encode("a\x7f", 2, ids, 8, &n), TOK_ERR_CHAR);
    CHECK_EQ_INT(n, 77); /* untouched on error */
    CHECK_EQ_INT(tok_encode("", 0, ids, 0, &n), TOK_OK);
    CHECK_EQ_INT(n, 0);

    /* Specials: an error by default, dropped on request. */
    int32_t seq[] = {TOK_BOS, tok_char_to_id('h'), tok_char_to_id('i'), TOK_EOS, TOK_PAD};
    CHECK_EQ_INT(tok_decode(seq, 5, back, sizeof back, &len, 0), TOK_ERR_ID);
    CHECK(strstr(tok_errmsg(), "special") != NULL);
    CHECK_EQ_INT(tok_decode(seq, 5, back, sizeof back, &len, TOK_DECODE_SKIP_SPECIAL), TOK_OK);
    CHECK_EQ_STR(back, "hi");
    CHECK_EQ_INT(len, 2);
    int32_t bad[] = {tok_char_to_id('a'), 99};
    CHECK_EQ_INT(tok_decode(bad, 2, back, sizeof back, &len, TOK_DECODE_SKIP_SPECIAL), TOK_ERR_ID);
    int32_t neg[] = {-5};
    CHECK_EQ_INT(tok_decode(neg, 1, back, sizeof back, &len, TOK_DECODE_SKIP_SPECIAL), TOK_ERR_ID);

    /* Decode buffer sizes: text + NUL must fit. */
    CHECK_EQ_INT(tok_decode(ids, 3, back, 3, &len, 0), TOK_ERR_SPACE);
    CHECK_EQ_INT(tok_decode(ids, 3, back, 4, &len, 0), TOK_OK);
    CHECK_EQ_INT(tok_decode(ids, 0, back, 0, &len, 0), TOK_ERR_SPACE);
    CHECK_EQ_INT(tok_decode(ids, 0, back, 1, &len, 0), TOK_OK);
    CHECK_EQ_STR(back, "");

    char name[8];
    CHECK_EQ_STR(tok_describe(TOK_PAD, name), "<pad>");
    CHECK_EQ_STR(tok_describe(TOK_BOS, name), "<bos>");
    CHECK_EQ_STR(tok_describe(TOK_EOS, name), "<eos>");
    CHECK_EQ_STR(tok_describe(TOK_NEWLINE, name), "\\n");
    CHECK_EQ_STR(tok_describe(tok_char_to_id('Q'), name), "Q");
    CHECK_EQ_STR(tok_describe(500, name), "<?>");
    CHECK_EQ_STR(tok_status_str(TOK_ERR_CHAR), "character outside the vocabulary");
    return check_report("test_tokenizer");
}
