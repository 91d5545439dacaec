/* int8 max pooling (TFLite MAX_POOL_2D). */
#include "mcu_nn_support.h"

/* Channel-innermost: the output pixel doubles as the running maximum, so input rows are read contiguously. */
static void max_pool_pixel(const int8_t *input,
                           const mcu_nn_dims *input_dims,
                           const mcu_pool_window *win,
                           int8_t *out)
{
    const int32_t channels = input_dims->c;
    for (int32_t c = 0; c < channels; c++)
    {
        out[c] = -128;
    }
    for (int32_t y = win->y_start; y < win->y_end; y++)
    {
        for (int32_t x = win->x_start; x < win->x_end; x++)
        {
            const int8_t *src = input + (y * input_dims->w + x) * channels;
            for (int32_t c = 0; c < channels; c++)
            {
                out[c] = src[c] > out[c] ? src[c] : out[c];
            }
        }
    }
}

mcu_nn_status mcu_max_pool_s8(const mcu_nn_context *ctx,
                                    const mcu_nn_pool_params *pool_params,
                                    const mcu_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const mcu_nn_dims *filter_dims,
                                    const mcu_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)ctx;
    const mcu_nn_pool_params *p = pool_params;
    const int32_t channels = input_dims->c;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * channels;
        for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
        {
            for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
            {
                const mcu_pool_window win = mcu_pool_window_at(p, input_dims, filter_dims, out_y, out_x);
                max_pool_pixel(input, input_dims, &win, output_data);
                for (int32_t c = 0; c < channels; c++)
                {
                    output_data[c] = (int8_t)mcu_clamp(output_data[c], p->activation.min, p->activation.max);
                }
                output_data += channels;
            }
        }
    }
    return MCU_NN_SUCCESS;
}
