/* libFuzzer harness for recipes: arbitrary bytes as a recipe must give a
 * plan or an error that names the file (file:line:column for anything the
 * parser located), never a crash or a leak; a plan's summary and every
 * command line must print. ${VAR}s expand from a fixed table. Built and run
 * by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/recipe.h"

static const char *vars(void *ctx, const char *name) {
    (void)ctx;
    return !strcmp(name, "HOME") ? "/home/x" : !strcmp(name, "OPENAI_BASE_URL") ? "http://h/v1" : NULL;
}

static long lines(void *ctx, const char *path) {
    (void)ctx;
    return (long)(strlen(path) % 7) - 1; /* unknown (-1) or a few */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    RecipeEnv env = {vars, lines, NULL};
    RecipePlan pl;
    Err e;
    e.msg[0] = 0;
    if (recipe_plan_text("fuzz.yaml", (const char *)data, size, &env, &pl, &e)) {
        if (strncmp(e.msg, "fuzz.yaml", 9) != 0) abort(); /* every error names the file */
        return 0;
    }
    free(recipe_plan_text_summary(&pl));
    int *redo = calloc((size_t)pl.n + 1, sizeof *redo);
    recipe_dependents(&pl, 0, redo);
    for (int i = 0; i < pl.n; i++) {
        if (pl.stages[i].digest[64] != 0 || strlen(pl.stages[i].digest) != 64) abort();
        for (int k = 0; k < pl.stages[i].nsteps; k++) free(recipe_step_line(&pl.stages[i].steps[k]));
        free(recipe_settings_diff(pl.stages[i].settings, pl.stages[0].settings));
    }
    free(redo);
    recipe_plan_free(&pl);
    return 0;
}
