/* recipe presets: the recipes `aloe run --preset NAME` writes, carried by the
 * binary wherever it is installed. They are edited in data/recipes/NAME.yaml
 * and embedded byte for byte at build time by the assembler's .incbin (gcc
 * and clang both pass it through; the compiler runs from the repository
 * root, and the Makefile makes this object depend on the two files), so
 * there is no second copy to keep in step. */
#include <string.h>

#include "aloe/recipe.h"

/* Each file is followed by a NUL so that it reads as a C string. */
__asm__(".section .rodata\n"
        ".balign 16\n"
        "aloe_recipe_preset_tiny:\n"
        ".incbin \"data/recipes/tiny.yaml\"\n"
        ".byte 0\n"
        ".balign 16\n"
        "aloe_recipe_preset_paper:\n"
        ".incbin \"data/recipes/paper.yaml\"\n"
        ".byte 0\n"
        ".previous\n");

extern const char aloe_recipe_preset_tiny[], aloe_recipe_preset_paper[];

const char *recipe_preset(const char *name) {
    if (!strcmp(name, "tiny")) return aloe_recipe_preset_tiny;
    if (!strcmp(name, "paper")) return aloe_recipe_preset_paper;
    return NULL;
}
