/*
 * int8 depthwise 2D convolution computed in place (TFLite DEPTHWISE_CONV_2D, stride 1,
 * channel multiplier 1, output the input's shape): the output overwrites the input, so
 * the layer needs one map and a few rows instead of two maps.
 *
 * Output row y reads input rows y - pad_top ... y - pad_top + (KH - 1) * dilation and is
 * written over input row y. Rows above y are overwritten already, and row y is being
 * overwritten; every input row is still read up to pad_top output rows later. So before
 * output row y is computed, input row y is copied into a ring of pad_top + 1 rows (the
 * scratch), and the window's rows at or above y come from the ring, the rows below it from
 * the tensor, which still holds them. Same arithmetic as mcu_depthwise_conv_s8's portable
 * loop: bit-exact with it and with TFLite Micro's reference kernel.
 */
#include <string.h>

#include "mcu_nn_support.h"

int32_t mcu_depthwise_conv_in_place_s8_get_buffer_size(const mcu_nn_dw_conv_params *dw_conv_params,
                                                       const mcu_nn_dims *input_dims)
{
    return (dw_conv_params->padding.h + 1) * input_dims->w * input_dims->c;
}

/* One output row: for each of the window's rows, where its input row lives (NULL: padding). */
static void output_row(const mcu_nn_dw_conv_params *p, const mcu_nn_per_channel_quant_params *q,
                       const mcu_nn_dims *dims, const mcu_nn_dims *filter_dims, const int8_t *filter_data,
                       const int32_t *bias_data, const int8_t *const *rows, int8_t *out)
{
    const int32_t channels = dims->c;
    for (int32_t out_x = 0; out_x < dims->w; out_x++)
    {
        const int32_t base_x = out_x - p->padding.w;
        for (int32_t c = 0; c < channels; c++)
        {
            int32_t acc = bias_data != NULL ? bias_data[c] : 0;
            for (int32_t ky = 0; ky < filter_dims->h; ky++)
            {
                if (rows[ky] == NULL)
                {
                    continue;
                }
                for (int32_t kx = 0; kx < filter_dims->w; kx++)
                {
                    const int32_t x = base_x + kx * p->dilation.w;
                    if (x >= 0 && x < dims->w)
                    {
                        acc += (rows[ky][x * channels + c] + p->input_offset) *
                               filter_data[(ky * filter_dims->w + kx) * channels + c];
                    }
                }
            }
            out[c] = mcu_requantize_s8(acc, q->multiplier[c], q->shift[c], p->output_offset, p->activation.min,
                                       p->activation.max);
        }
        out += channels;
    }
}

mcu_nn_status mcu_depthwise_conv_in_place_s8(const mcu_nn_context *ctx,
                                             const mcu_nn_dw_conv_params *dw_conv_params,
                                             const mcu_nn_per_channel_quant_params *quant_params,
                                             const mcu_nn_dims *dims,
                                             const mcu_nn_dims *filter_dims,
                                             const int8_t *filter_data,
                                             const int32_t *bias_data,
                                             int8_t *data)
{
    const mcu_nn_dw_conv_params *p = dw_conv_params;
    const int32_t ring_rows = p->padding.h + 1;
    const int32_t row_bytes = dims->w * dims->c;
    if (p->ch_mult != 1 || p->stride.h != 1 || p->stride.w != 1 || p->padding.h < 0 || p->dilation.h < 1 ||
        filter_dims->h > MCU_DW_IN_PLACE_MAX_KH || filter_dims->c != dims->c || ctx->buf == NULL ||
        ctx->size < mcu_depthwise_conv_in_place_s8_get_buffer_size(p, dims))
    {
        return MCU_NN_ARG_ERROR;
    }
    int8_t *ring = (int8_t *)ctx->buf;
    for (int32_t b = 0; b < dims->n; b++)
    {
        int8_t *map = data + b * dims->h * row_bytes;
        for (int32_t y = 0; y < dims->h; y++)
        {
            memcpy(ring + (y % ring_rows) * row_bytes, map + y * row_bytes, (size_t)row_bytes);
            const int8_t *rows[MCU_DW_IN_PLACE_MAX_KH];
            for (int32_t ky = 0; ky < filter_dims->h; ky++)
            {
                const int32_t r = y - p->padding.h + ky * p->dilation.h;
                rows[ky] = r < 0 || r >= dims->h ? NULL
                           : r <= y             ? ring + (r % ring_rows) * row_bytes
                                                : map + r * row_bytes;
            }
            output_row(p, quant_params, dims, filter_dims, filter_data, bias_data, rows, map + y * row_bytes);
        }
    }
    return MCU_NN_SUCCESS;
}
