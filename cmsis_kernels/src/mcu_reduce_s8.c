/*
 * int8 reduction over any set of axes (TFLite's MEAN, SUM, REDUCE_MAX, REDUCE_MIN).
 * The input is seen with its axes merged (neighbours both reduced or both kept are one
 * axis); out_strides[k] is axis k's stride in the output, 0 where it is reduced. Each
 * output value gets an int32 accumulator in ctx->buf: a sum, rescaled at the end with
 * quant (MEAN and SUM), or the running maximum or minimum (the output shares the input's
 * quantization).
 */
#include <string.h>

#include "mcu_nn_support.h"

#define MCU_REDUCE_MAX_AXES 8

/* One innermost row of the input into the accumulators: a reduced row (kept == 0) into
 * one accumulator, a kept row element by element. */
static void reduce_row(const int8_t *row, int32_t size, int32_t kept, mcu_reduce_op op, int32_t *acc)
{
    if (!kept)
    {
        int32_t a = acc[0];
        switch (op)
        {
        case MCU_REDUCE_SUM:
            for (int32_t i = 0; i < size; i++)
            {
                a += row[i];
            }
            break;
        case MCU_REDUCE_MAX:
            for (int32_t i = 0; i < size; i++)
            {
                a = row[i] > a ? row[i] : a;
            }
            break;
        default:
            for (int32_t i = 0; i < size; i++)
            {
                a = row[i] < a ? row[i] : a;
            }
            break;
        }
        acc[0] = a;
        return;
    }
    switch (op)
    {
    case MCU_REDUCE_SUM:
        for (int32_t i = 0; i < size; i++)
        {
            acc[i] += row[i];
        }
        break;
    case MCU_REDUCE_MAX:
        for (int32_t i = 0; i < size; i++)
        {
            acc[i] = row[i] > acc[i] ? row[i] : acc[i];
        }
        break;
    default:
        for (int32_t i = 0; i < size; i++)
        {
            acc[i] = row[i] < acc[i] ? row[i] : acc[i];
        }
        break;
    }
}

mcu_nn_status mcu_reduce_s8(const mcu_nn_context *ctx,
                                  const int8_t *input,
                                  const int32_t *sizes,
                                  const int32_t *out_strides,
                                  const int32_t num_axes,
                                  const mcu_reduce_op op,
                                  const mcu_reduce_quant *quant,
                                  const int32_t output_size,
                                  int8_t *output)
{
    int32_t *acc = (int32_t *)ctx->buf;
    if (acc == NULL || ctx->size < output_size * (int32_t)sizeof(int32_t) || num_axes < 1 ||
        num_axes > MCU_REDUCE_MAX_AXES || out_strides[num_axes - 1] > 1 || (op == MCU_REDUCE_SUM && quant == NULL))
    {
        return MCU_NN_ARG_ERROR;
    }
    const int32_t start = op == MCU_REDUCE_SUM ? 0 : (op == MCU_REDUCE_MAX ? -128 : 127);
    for (int32_t i = 0; i < output_size; i++)
    {
        acc[i] = start;
    }
    const int32_t inner = num_axes - 1;
    int32_t position[MCU_REDUCE_MAX_AXES] = {0};
    int32_t out = 0; /* the output offset of the current row */
    for (;;)
    {
        reduce_row(input, sizes[inner], out_strides[inner], op, acc + out); /* stride 1 (kept) or 0 */
        input += sizes[inner];
        int32_t k = inner - 1; /* the odometer over the outer axes */
        for (; k >= 0; k--)
        {
            out += out_strides[k];
            if (++position[k] < sizes[k])
            {
                break;
            }
            out -= out_strides[k] * sizes[k];
            position[k] = 0;
        }
        if (k < 0)
        {
            break;
        }
    }
    for (int32_t i = 0; i < output_size; i++)
    {
        output[i] = op == MCU_REDUCE_SUM
                        ? mcu_requantize_s8(acc[i] + quant->sum_offset, quant->multiplier, quant->shift,
                                            quant->output_offset, -128, 127)
                        : (int8_t)acc[i];
    }
    return MCU_NN_SUCCESS;
}
