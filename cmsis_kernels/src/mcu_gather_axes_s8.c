/*
 * int8 gather along each axis of a 4D tensor: TFLite's STRIDED_SLICE, SLICE, SPLIT,
 * SPLIT_V, MIRROR_PAD and RESIZE_NEAREST_NEIGHBOR, with the index tables the compiler
 * computed. A byte copy: the output shares the input's quantization.
 */
#include <string.h>

#include "mcu_nn_support.h"

/* The input index output position i reads along an axis: its table's entry, or begin + i. */
static inline int32_t input_index(const int32_t *index, int32_t begin, int32_t i)
{
    return index != NULL ? index[i] : begin + i;
}

/* Every index of one axis inside [0, size). */
static int axis_in_bounds(const int32_t *index, int32_t begin, int32_t count, int32_t size)
{
    if (index == NULL)
    {
        return begin >= 0 && count >= 0 && begin + count <= size;
    }
    for (int32_t i = 0; i < count; i++)
    {
        if (index[i] < 0 || index[i] >= size)
        {
            return 0;
        }
    }
    return 1;
}

mcu_nn_status mcu_gather_axes_s8(const int8_t *input,
                                       const mcu_nn_dims *input_dims,
                                       const mcu_nn_dims *begin,
                                       const int32_t *const index[4],
                                       const mcu_nn_dims *output_dims,
                                       int8_t *output)
{
    const int32_t in[4] = {input_dims->n, input_dims->h, input_dims->w, input_dims->c};
    const int32_t start[4] = {begin->n, begin->h, begin->w, begin->c};
    const int32_t out[4] = {output_dims->n, output_dims->h, output_dims->w, output_dims->c};
    for (int32_t k = 0; k < 4; k++)
    {
        if (!axis_in_bounds(index[k], start[k], out[k], in[k]))
        {
            return MCU_NN_ARG_ERROR;
        }
    }
    const int32_t stride_w = in[3];
    const int32_t stride_h = in[2] * stride_w;
    const int32_t stride_n = in[1] * stride_h;
    for (int32_t n = 0; n < out[0]; n++)
    {
        const int8_t *in_n = input + input_index(index[0], start[0], n) * stride_n;
        for (int32_t h = 0; h < out[1]; h++)
        {
            const int8_t *in_h = in_n + input_index(index[1], start[1], h) * stride_h;
            for (int32_t w = 0; w < out[2]; w++)
            {
                const int8_t *row = in_h + input_index(index[2], start[2], w) * stride_w;
                if (index[3] == NULL)
                {
                    memcpy(output, row + start[3], (size_t)out[3]);
                }
                else
                {
                    for (int32_t c = 0; c < out[3]; c++)
                    {
                        output[c] = row[index[3][c]];
                    }
                }
                output += out[3];
            }
        }
    }
    return MCU_NN_SUCCESS;
}
