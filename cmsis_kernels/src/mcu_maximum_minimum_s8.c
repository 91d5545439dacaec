/* int8 MAXIMUM / MINIMUM with broadcasting over NHWC (TFLite's int8 kernel): the inputs
   and the output share one scale and zero point, so the raw values are compared. */
#include "mcu_nn_support.h"

static int8_t larger(int8_t a, int8_t b, const void *unused)
{
    (void)unused;
    return a > b ? a : b;
}

static int8_t smaller(int8_t a, int8_t b, const void *unused)
{
    (void)unused;
    return a < b ? a : b;
}

mcu_nn_status mcu_maximum_minimum_s8(const int8_t *input_1_vect,
                                           const mcu_nn_dims *input_1_dims,
                                           const int8_t *input_2_vect,
                                           const mcu_nn_dims *input_2_dims,
                                           int8_t *output,
                                           const mcu_nn_dims *output_dims,
                                           const int32_t maximum)
{
    /* one call per constant callback: each inlines to a direct comparison, no call through a pointer */
    if (maximum)
    {
        return mcu_broadcast_for_each_s8(input_1_vect, input_1_dims, input_2_vect, input_2_dims, output, output_dims,
                                         larger, NULL);
    }
    return mcu_broadcast_for_each_s8(input_1_vect, input_1_dims, input_2_vect, input_2_dims, output, output_dims,
                                     smaller, NULL);
}
