"""model.h of a hand-written one-input, one-output model, for tests that build firmware
without the compiler (the interface render.py generates)."""

MODEL_H = """#include <stdint.h>
#define MODEL_NUM_INPUTS 1
#define MODEL_NUM_OUTPUTS 1
extern int8_t *const model_inputs[MODEL_NUM_INPUTS];
extern const uint32_t model_input_sizes[MODEL_NUM_INPUTS];
extern int8_t *const model_outputs[MODEL_NUM_OUTPUTS];
extern const uint32_t model_output_sizes[MODEL_NUM_OUTPUTS];
int model_invoke(void);
#define MODEL_OK 0
static inline const char *model_status_text(int status) { (void)status; return "stub model error"; }
"""
