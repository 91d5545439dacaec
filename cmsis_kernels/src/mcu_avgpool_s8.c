/*
 * int8 average pooling (TFLite AVERAGE_POOL_2D): the mean over the in-bounds
 * taps only, rounded half away from zero.
 *
 * Helium: a window of at most 256 taps sums each channel in an int16 lane (|sum| <= 128 *
 * 256 fits), 16 channels per step of two predicated widening loads; the sums are the
 * same integers as the portable code's, so is the division.
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

#if defined(ARM_MATH_MVEI)
#define MVE_MAX_TAPS 256 /* the int16 sums' bound */

/* The window's sums of channels [c, c + 16) (those below channels) into sums; full: all 16
 * exist (no predicate), a constant of each copy. */
static inline __attribute__((always_inline)) void sum_window_16_mve(const int8_t *input, const mcu_nn_dims *input_dims,
                                                                    const mcu_pool_window *win, int32_t c, int full,
                                                                    int32_t *sums)
{
    const int32_t channels = input_dims->c;
    const mve_pred16_t lo = vctp16q((uint32_t)(channels - c));
    const mve_pred16_t hi = vctp16q((uint32_t)(channels - c > 8 ? channels - c - 8 : 0));
    const int32_t row_px = win->x_end - win->x_start;
    int16x8_t acc_lo = vdupq_n_s16(0), acc_hi = vdupq_n_s16(0);
    for (int32_t y = win->y_start; y < win->y_end; y++)
    {
        const int8_t *src = input + (y * input_dims->w + win->x_start) * channels + c;
        for (int32_t k = 0; k < row_px; k++, src += channels)
        {
            acc_lo = vaddq_s16(acc_lo, full ? vldrbq_s16(src) : vldrbq_z_s16(src, lo));
            acc_hi = vaddq_s16(acc_hi, full ? vldrbq_s16(src + 8) : vldrbq_z_s16(src + 8, hi));
        }
    }
    int16_t lanes[16];
    vst1q_s16(lanes, acc_lo);
    vst1q_s16(lanes + 8, acc_hi);
    for (int32_t j = 0; j < 16 && c + j < channels; j++)
    {
        sums[c + j] = lanes[j];
    }
}
#endif

/* The window's sum of every channel into sums. */
static void sum_window_any(const int8_t *input, const mcu_nn_dims *input_dims, const mcu_pool_window *win,
                           int32_t count, int32_t *sums)
{
#if defined(ARM_MATH_MVEI)
    if (count <= MVE_MAX_TAPS)
    {
        int32_t c = 0;
        for (; c + 16 <= input_dims->c; c += 16)
        {
            sum_window_16_mve(input, input_dims, win, c, 1, sums);
        }
        if (c < input_dims->c)
        {
            sum_window_16_mve(input, input_dims, win, c, 0, sums);
        }
        return;
    }
#else
    (void)count;
#endif
    sum_window(input, input_dims, win, sums);
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
                sum_window_any(input, input_dims, &win, count, sums);
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
