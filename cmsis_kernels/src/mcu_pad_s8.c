/* int8 constant padding of a 4D tensor (TFLite PAD: pads with the output zero point). */
#include <string.h>

#include "mcu_nn_support.h"

mcu_nn_status mcu_pad_s8(const int8_t *input,
                               const mcu_nn_dims *input_dims,
                               const mcu_nn_dims *pad_before,
                               const int8_t pad_value,
                               const mcu_nn_dims *output_dims,
                               int8_t *output)
{
    const mcu_nn_dims *in = input_dims;
    const mcu_nn_dims *out = output_dims;
    if (pad_before->n + in->n > out->n || pad_before->h + in->h > out->h || pad_before->w + in->w > out->w ||
        pad_before->c + in->c > out->c)
    {
        return MCU_NN_ARG_ERROR;
    }
    memset(output, pad_value, (size_t)(out->n * out->h * out->w * out->c));
    for (int32_t n = 0; n < in->n; n++)
    {
        for (int32_t h = 0; h < in->h; h++)
        {
            for (int32_t w = 0; w < in->w; w++)
            {
                const int32_t dst =
                    (((n + pad_before->n) * out->h + h + pad_before->h) * out->w + w + pad_before->w) * out->c +
                    pad_before->c;
                memcpy(output + dst, input, (size_t)in->c);
                input += in->c;
            }
        }
    }
    return MCU_NN_SUCCESS;
}
