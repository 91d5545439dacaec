/* int8 concatenation along any axis (TFLite CONCATENATION: a byte copy, all quantizations equal). */
#include <string.h>

#include "mcu_nn_support.h"

mcu_nn_status mcu_concat_s8(const int8_t *const *inputs,
                                  const int32_t *input_row_sizes,
                                  const int32_t num_inputs,
                                  const int32_t outer_size,
                                  int8_t *output)
{
    for (int32_t r = 0; r < outer_size; r++)
    {
        for (int32_t i = 0; i < num_inputs; i++)
        {
            const int32_t row = input_row_sizes[i];
            memcpy(output, inputs[i] + r * row, (size_t)row);
            output += row;
        }
    }
    return MCU_NN_SUCCESS;
}
