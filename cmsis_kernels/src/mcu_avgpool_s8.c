/*
 * int8 average pooling (TFLite AVERAGE_POOL_2D): the mean over the in-bounds
 * taps only, rounded half away from zero.
 */
#include "mcu_nn_support.h"

int32_t mcu_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src)
{
    (void)dim_dst_width;
    return ch_src * (int32_t)sizeof(int32_t);
}

/* Channel-innermost sums into the int32 scratch, so input rows are read contiguously. */
static void sum_window(const int8_t *input,
                       const mcu_nn_dims *input_dims,
                       const mcu_pool_window *win,
                       int32_t *sums)
{
    const int32_t channels = input_dims->c;
    for (int32_t c = 0; c < channels; c++)
    {
        sums[c] = 0;
    }
    for (int32_t y = win->y_start; y < win->y_end; y++)
    {
        for (int32_t x = win->x_start; x < win->x_end; x++)
        {
            const int8_t *src = input + (y * input_dims->w + x) * channels;
            for (int32_t c = 0; c < channels; c++)
            {
                sums[c] += src[c];
            }
        }
    }
}

mcu_nn_status mcu_avgpool_s8(const mcu_nn_context *ctx,
                                   const mcu_nn_pool_params *pool_params,
                                   const mcu_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const mcu_nn_dims *filter_dims,
                                   const mcu_nn_dims *output_dims,
                                   int8_t *output_data)
{
    if (ctx->buf == NULL)
    {
        return MCU_NN_ARG_ERROR;
    }
    const mcu_nn_pool_params *p = pool_params;
    const int32_t channels = input_dims->c;
    int32_t *sums = (int32_t *)ctx->buf;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * channels;
        for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
        {
            for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
            {
                const mcu_pool_window win = mcu_pool_window_at(p, input_dims, filter_dims, out_y, out_x);
                const int32_t count = (win.y_end - win.y_start) * (win.x_end - win.x_start);
                if (count <= 0)
                {
                    return MCU_NN_ARG_ERROR;
                }
                sum_window(input, input_dims, &win, sums);
                for (int32_t c = 0; c < channels; c++)
                {
                    const int32_t sum = sums[c];
                    const int32_t mean = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    *output_data++ = (int8_t)mcu_clamp(mean, p->activation.min, p->activation.max);
                }
            }
        }
    }
    return MCU_NN_SUCCESS;
}
