# aloe build. `make` builds build/aloe; `make test` builds and runs the tests;
# `make test SAN=1` does both under AddressSanitizer + UndefinedBehaviorSanitizer
# in build-san/. Sources are found by wildcard: add a file, it is built.
CC ?= cc
SAN ?=
ifeq ($(SAN),)
BUILD ?= build
OPT ?= -O2
else
BUILD ?= build-san
OPT ?= -O1
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
# Everything but the SIMD kernels is built for x86-64-v2 (any x86-64 CPU of
# the last 15 years); the kernels are built once per level below and chosen
# at run time. ARCH=-march=native builds the rest for this CPU only (the
# kernel levels keep their own flags).
ARCH ?= -march=x86-64-v2
PKGS = libcurl jansson sqlite3 libpcre2-8 libutf8proc openblas libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL = -std=c11 -g $(OPT) $(ARCH) -pthread -Wall -Wextra -D_GNU_SOURCE -Isrc -Itests \
             $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lyaml -lm -pthread $(SANFLAGS) $(LDFLAGS)

LAYERS = base formats tok kernels model infer train llm serve aloe
# The SIMD kernel sources, compiled once per kernel level (src/kernels/cpu.h,
# klevel.h): -DKLEVEL=<level> names their functions, KFLAGS_<level> are the
# target flags. Each level's flags switch off what is above it, so ARCH=
# -march=native does not leak AVX-512 into the avx2 build. A level added
# here is added to cpu.h's KernelLevel and kernel_funcs.h's KERNEL_LEVELS.
KLEVELS = scalar avx2 avx512 avx512vbmi
KLEVEL_SRC = $(addprefix src/kernels/,quant.c quant_avx512.c quant_kquant.c quant_legacy.c \
             quant_legacy_avx512.c ops.c attention.c stream.c gemm_bf16_level.c gemm_q.c gemm_q_grp.c gemm_q_amx.c gemm_bf16_amx.c)
KFLAGS_scalar = -mno-avx
KFLAGS_avx2 = -mavx2 -mfma -mf16c -mbmi -mbmi2 -mno-avx512f -mno-avxvnni
KFLAGS_avx512 = -mavx2 -mfma -mf16c -mbmi -mbmi2 -mno-avxvnni -mavx512f -mavx512bw -mavx512vl -mavx512dq \
                -mavx512cd -mavx512vnni -mno-avx512vbmi
KFLAGS_avx512vbmi = $(KFLAGS_avx512:-mno-avx512vbmi=-mavx512vbmi)
# Flags for the kernel level objects only, after all others (scripts/fuzz.sh
# builds them uninstrumented: no parser runs in them, and clang's ASan +
# coverage build of the unrolled SIMD kernels took 8 of CI's 30 minutes).
KLEVEL_CFLAGS ?=
LIB_SRC := $(filter-out $(KLEVEL_SRC),$(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c)))
CLI_SRC := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/*/test_*.c)
TOOL_SRC := $(wildcard tests/tools/*.c)

KLEVEL_OBJ := $(foreach l,$(KLEVELS),$(KLEVEL_SRC:src/kernels/%.c=$(BUILD)/src/kernels/$(l)/%.o))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(KLEVEL_OBJ)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:%.c=$(BUILD)/%)
TOOL_BIN := $(TOOL_SRC:%.c=$(BUILD)/%)
HARNESS_OBJ := $(BUILD)/tests/test.o

.PHONY: all test tests clean
.SECONDARY:
all: $(BUILD)/aloe

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

define KLEVEL_RULE
$$(BUILD)/src/kernels/$(1)/%.o: src/kernels/%.c
	@mkdir -p $$(dir $$@)
	@echo "  CC $$< ($(1))"
	@$$(CC) $$(CFLAGS_ALL) $$(KFLAGS_$(1)) $$(KLEVEL_CFLAGS) -DKLEVEL=$(1) -c $$< -o $$@
endef
$(foreach l,$(KLEVELS),$(eval $(call KLEVEL_RULE,$(l))))

$(BUILD)/libaloe.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/aloe: $(CLI_OBJ) $(BUILD)/libaloe.a
	@echo "  LINK $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libaloe.a $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(HARNESS_OBJ) $(BUILD)/libaloe.a
	@mkdir -p $(dir $@)
	@echo "  LINK $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $< $(HARNESS_OBJ) $(BUILD)/libaloe.a $(LDLIBS_ALL)

# Test-only tools (the fake OpenAI-compatible server) also use libmicrohttpd.
$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/libaloe.a
	@mkdir -p $(dir $@)
	@echo "  LINK $@"
	@$(CC) $(CFLAGS_ALL) $(shell pkg-config --cflags libmicrohttpd) -o $@ $< $(BUILD)/libaloe.a \
	    $(shell pkg-config --libs libmicrohttpd) $(LDLIBS_ALL)

# Benchmark harnesses (bench/*.c), built by their bench/*.sh scripts:
# `make build/bench/matvec_speed`.
$(BUILD)/bench/%: bench/%.c $(BUILD)/libaloe.a
	@mkdir -p $(dir $@)
	@echo "  LINK $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libaloe.a $(LDLIBS_ALL)

# The preset recipes are embedded with .incbin (src/aloe/recipe_presets.c).
$(BUILD)/src/aloe/recipe_presets.o: data/recipes/tiny.yaml data/recipes/paper.yaml
$(BUILD)/src/aloe/view_html.o: src/aloe/view_page.html

tests: $(BUILD)/aloe $(TEST_BIN) $(TOOL_BIN)

test: tests
	@BUILD=$(BUILD) scripts/run-tests.sh

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(HARNESS_OBJ:.o=.d) $(TEST_BIN:=.d) $(TOOL_BIN:=.d)
