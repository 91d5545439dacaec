/* int8 MUL with broadcasting over NHWC (TFLite BroadcastMul4DSlow arithmetic). */
#include "mcu_nn_support.h"

arm_cmsis_nn_status mcu_broadcast_mul_s8(const int8_t *input_1_vect,
                                         const cmsis_nn_dims *input_1_dims,
                                         const int8_t *input_2_vect,
                                         const cmsis_nn_dims *input_2_dims,
                                         const int32_t input_1_offset,
                                         const int32_t input_2_offset,
                                         int8_t *output,
                                         const cmsis_nn_dims *output_dims,
                                         const int32_t out_offset,
                                         const int32_t out_mult,
                                         const int32_t out_shift,
                                         const int32_t out_activation_min,
                                         const int32_t out_activation_max)
{
    if (!mcu_broadcastable(input_1_dims, output_dims) || !mcu_broadcastable(input_2_dims, output_dims))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const mcu_mul_quant q = {input_1_offset, input_2_offset, out_offset, out_mult, out_shift,
                             out_activation_min, out_activation_max};
    const mcu_strides s1 = mcu_broadcast_strides(input_1_dims);
    const mcu_strides s2 = mcu_broadcast_strides(input_2_dims);
    for (int32_t n = 0; n < output_dims->n; n++)
    {
        for (int32_t h = 0; h < output_dims->h; h++)
        {
            for (int32_t w = 0; w < output_dims->w; w++)
            {
                const int8_t *a = input_1_vect + n * s1.n + h * s1.h + w * s1.w;
                const int8_t *b = input_2_vect + n * s2.n + h * s2.h + w * s2.w;
                for (int32_t c = 0; c < output_dims->c; c++)
                {
                    *output++ = mcu_mul_one_s8(a[c * s1.c], b[c * s2.c], &q);
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
