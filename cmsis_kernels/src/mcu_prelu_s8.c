/* int8 PRELU with alpha broadcast over NHWC (TFLite Micro's int8 Prelu arithmetic). */
#include "mcu_nn_support.h"

/* One value: x - zero point requantized as is when >= 0, times alpha - its zero point otherwise. */
static int8_t prelu_one(int8_t x, int8_t alpha, const void *q)
{
    const mcu_prelu_quant *p = (const mcu_prelu_quant *)q;
    const int32_t value = x + p->input_offset;
    const int32_t out = value >= 0
                            ? mcu_requantize(value, p->positive_mult, p->positive_shift)
                            : mcu_requantize(value * (alpha + p->alpha_offset), p->negative_mult, p->negative_shift);
    return (int8_t)mcu_clamp(out + p->output_offset, INT8_MIN, INT8_MAX);
}

mcu_nn_status mcu_prelu_s8(const int8_t *input,
                                 const mcu_nn_dims *input_dims,
                                 const int8_t *alpha,
                                 const mcu_nn_dims *alpha_dims,
                                 const mcu_prelu_quant *quant,
                                 int8_t *output,
                                 const mcu_nn_dims *output_dims)
{
    return mcu_broadcast_for_each_s8(input, input_dims, alpha, alpha_dims, output, output_dims, prelu_one, quant);
}
