/* int8 ADD with broadcasting over NHWC (TFLite BroadcastAdd4DSlow arithmetic). */
#include "mcu_nn_support.h"

/* mcu_add_one_s8 in the mcu_binary_op_s8 shape. */
static int8_t add_one(int8_t a, int8_t b, const void *q)
{
    return mcu_add_one_s8(a, b, (const mcu_add_quant *)q);
}

mcu_nn_status mcu_broadcast_add_s8(const int8_t *input_1_vect,
                                         const mcu_nn_dims *input_1_dims,
                                         const int8_t *input_2_vect,
                                         const mcu_nn_dims *input_2_dims,
                                         const int32_t input_1_offset,
                                         const int32_t input_1_mult,
                                         const int32_t input_1_shift,
                                         const int32_t input_2_offset,
                                         const int32_t input_2_mult,
                                         const int32_t input_2_shift,
                                         const int32_t left_shift,
                                         int8_t *output,
                                         const mcu_nn_dims *output_dims,
                                         const int32_t out_offset,
                                         const int32_t out_mult,
                                         const int32_t out_shift,
                                         const int32_t out_activation_min,
                                         const int32_t out_activation_max)
{
    const mcu_add_quant q = {input_1_offset, input_1_mult, input_1_shift, input_2_offset, input_2_mult,
                             input_2_shift,  left_shift,   out_offset,    out_mult,       out_shift,
                             out_activation_min, out_activation_max};
    return mcu_broadcast_for_each_s8(input_1_vect, input_1_dims, input_2_vect, input_2_dims, output, output_dims,
                                     add_one, &q);
}
