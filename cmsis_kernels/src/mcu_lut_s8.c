/* int8 -> int8 through a 256-entry table: an activation whose integer definition maps
   each input value to one output value (TFLite's int8 LOGISTIC), precomputed at compile time. */
#include "mcu_nn_support.h"

mcu_nn_status mcu_lut_s8(const int8_t *input, int8_t *output, const int32_t size, const int8_t table[256])
{
    /* in place is fine: each output byte depends only on the input byte at its index */
    for (int32_t i = 0; i < size; i++)
    {
        output[i] = table[(uint8_t)(input[i] + 128)];
    }
    return MCU_NN_SUCCESS;
}
