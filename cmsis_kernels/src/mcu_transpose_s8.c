/* int8 4D transpose (TFLite TRANSPOSE). */
#include "mcu_nn_support.h"

mcu_nn_status mcu_transpose_s8(const int8_t *input,
                                     const mcu_nn_dims *input_dims,
                                     const int32_t *perm,
                                     int8_t *output)
{
    const int32_t in_dims[4] = {input_dims->n, input_dims->h, input_dims->w, input_dims->c};
    const int32_t in_strides[4] = {input_dims->h * input_dims->w * input_dims->c, input_dims->w * input_dims->c,
                                   input_dims->c, 1};
    int32_t out_dims[4];
    int32_t strides[4]; /* input stride of each output dimension */
    for (int32_t i = 0; i < 4; i++)
    {
        if (perm[i] < 0 || perm[i] > 3)
        {
            return MCU_NN_ARG_ERROR;
        }
        out_dims[i] = in_dims[perm[i]];
        strides[i] = in_strides[perm[i]];
    }
    for (int32_t i0 = 0; i0 < out_dims[0]; i0++)
    {
        for (int32_t i1 = 0; i1 < out_dims[1]; i1++)
        {
            for (int32_t i2 = 0; i2 < out_dims[2]; i2++)
            {
                const int8_t *src = input + i0 * strides[0] + i1 * strides[1] + i2 * strides[2];
                for (int32_t i3 = 0; i3 < out_dims[3]; i3++)
                {
                    *output++ = src[i3 * strides[3]];
                }
            }
        }
    }
    return MCU_NN_SUCCESS;
}
