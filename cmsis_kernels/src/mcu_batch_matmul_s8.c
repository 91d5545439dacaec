/* int8 BATCH_MATMUL (TFLite Micro's BatchMatMul arithmetic): out[b, i, j] = clamp(output_offset +
   MBQM(sum over k of (lhs[b, i, k] + lhs_offset) * (rhs[b, k, j] + rhs_offset), multiplier, shift)).
   Each operand is read through strides, so adj_x / adj_y need no transposed copy, and a batch
   stride of 0 broadcasts that operand over the batch axis. */
#include "mcu_nn_support.h"

/* One output matrix [rows, cols] from the operands' matrices at lhs and rhs. */
static void matmul_one(const int8_t *lhs, const int8_t *rhs, const mcu_batch_matmul_dims *d,
                       const mcu_batch_matmul_quant *q, int8_t *out)
{
    for (int32_t i = 0; i < d->rows; i++)
    {
        const int8_t *row = lhs + i * d->lhs_row_stride;
        for (int32_t j = 0; j < d->cols; j++)
        {
            const int8_t *col = rhs + j * d->rhs_col_stride;
            int32_t acc = 0;
            for (int32_t k = 0; k < d->depth; k++)
            {
                acc += (row[k * d->lhs_depth_stride] + q->lhs_offset) * (col[k * d->rhs_depth_stride] + q->rhs_offset);
            }
            *out++ = mcu_requantize_s8(acc, q->multiplier, q->shift, q->output_offset, q->act_min, q->act_max);
        }
    }
}

mcu_nn_status mcu_batch_matmul_s8(const int8_t *lhs,
                                        const int8_t *rhs,
                                        const mcu_batch_matmul_dims *dims,
                                        const mcu_batch_matmul_quant *quant,
                                        int8_t *output)
{
    const int32_t matrix = dims->rows * dims->cols;
    for (int32_t b0 = 0; b0 < dims->batches[0]; b0++)
    {
        for (int32_t b1 = 0; b1 < dims->batches[1]; b1++)
        {
            for (int32_t b2 = 0; b2 < dims->batches[2]; b2++)
            {
                const int8_t *l = lhs + b0 * dims->lhs_batch_strides[0] + b1 * dims->lhs_batch_strides[1] +
                                  b2 * dims->lhs_batch_strides[2];
                const int8_t *r = rhs + b0 * dims->rhs_batch_strides[0] + b1 * dims->rhs_batch_strides[1] +
                                  b2 * dims->rhs_batch_strides[2];
                matmul_one(l, r, dims, quant, output);
                output += matrix;
            }
        }
    }
    return MCU_NN_SUCCESS;
}
