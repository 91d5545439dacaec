/* int8 SUB and SQUARED_DIFFERENCE with broadcasting over NHWC (TFLite Micro's Sub /
   BroadcastQuantSubSlow and SquaredDifference arithmetic). Both inputs are rescaled as
   ADD's are; the second is then subtracted. This is not ADD with the second multiplier
   negated: the doubling high multiply rounds ties towards +infinity, so negating its
   operand does not negate its result. */
#include "mcu_nn_support.h"

/* The two inputs on their common scale, the second subtracted. */
static int32_t difference(int8_t a, int8_t b, const mcu_add_quant *q)
{
    const int32_t a_shifted = (a + q->input_1_offset) * (1 << q->left_shift);
    const int32_t b_shifted = (b + q->input_2_offset) * (1 << q->left_shift);
    return mcu_requantize(a_shifted, q->input_1_mult, q->input_1_shift) -
           mcu_requantize(b_shifted, q->input_2_mult, q->input_2_shift);
}

static int8_t sub_one(int8_t a, int8_t b, const void *quant)
{
    const mcu_add_quant *q = (const mcu_add_quant *)quant;
    return mcu_requantize_s8(difference(a, b, q), q->out_mult, q->out_shift, q->out_offset, q->act_min, q->act_max);
}

/* SQUARED_DIFFERENCE: left_shift 7 keeps the square within int32. */
static int8_t squared_difference_one(int8_t a, int8_t b, const void *quant)
{
    const mcu_add_quant *q = (const mcu_add_quant *)quant;
    const int32_t d = difference(a, b, q);
    return mcu_requantize_s8(d * d, q->out_mult, q->out_shift, q->out_offset, q->act_min, q->act_max);
}

mcu_nn_status mcu_sub_s8(const int8_t *input_1_vect,
                               const mcu_nn_dims *input_1_dims,
                               const int8_t *input_2_vect,
                               const mcu_nn_dims *input_2_dims,
                               const mcu_add_quant *quant,
                               int8_t *output,
                               const mcu_nn_dims *output_dims,
                               const int32_t squared)
{
    /* one call per constant callback: each inlines to direct code, no call through a pointer */
    if (squared)
    {
        return mcu_broadcast_for_each_s8(input_1_vect, input_1_dims, input_2_vect, input_2_dims, output, output_dims,
                                         squared_difference_one, quant);
    }
    return mcu_broadcast_for_each_s8(input_1_vect, input_1_dims, input_2_vect, input_2_dims, output, output_dims,
                                     sub_one, quant);
}
