/* Per-layer hooks of the profile and debug builds (model.c calls them when the build
 * defines MCU_LAYER_HOOKS):
 *   MCU_PROFILE   MCU-LAYER <op> <ticks>       timer ticks the op took (hook cost excluded)
 *   MCU_DEBUG     MCU-TENSOR <op> <hex bytes>  the op's output, to compare with the host */
#ifndef MCU_LAYER_HOOKS_H
#define MCU_LAYER_HOOKS_H
#include <stdint.h>

void mcu_layer_begin(void);
void mcu_layer_done(int op, const void *output, uint32_t bytes);

#endif
