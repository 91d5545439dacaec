/*
 * int8 bilinear resize of an NHWC tensor, TFLite's integer algorithm
 * (ResizeBilinearInteger): positions in 1/1024 input steps, the four neighbours weighted
 * in 2^20 and rounded half away from zero. The output shares the input's quantization.
 */
#include "mcu_nn_support.h"

/* One output row or column: its position in 1/1024 input steps and the input rows (columns)
 * below and above it. Divisions truncate, as TFLite's do. */
typedef struct
{
    int32_t weight; /* of the upper neighbour, in 1/1024; the lower one's is 1024 - weight */
    int32_t lower, upper;
} mcu_resize_tap;

static mcu_resize_tap resize_tap(int32_t i, int32_t scale, int32_t half_pixel_centers, int32_t size)
{
    const int32_t position = i * scale + (half_pixel_centers ? scale / 2 - (1 << 9) : 0);
    mcu_resize_tap tap;
    tap.lower = position / (1 << 10) > 0 ? position / (1 << 10) : 0;
    tap.upper = (position + (1 << 10) - 1) / (1 << 10);
    tap.upper = tap.upper < size - 1 ? tap.upper : size - 1;
    tap.weight = position - (1 << 10) * tap.lower;
    return tap;
}

mcu_nn_status mcu_resize_bilinear_s8(const int8_t *input,
                                           const mcu_nn_dims *input_dims,
                                           const int32_t scale_h,
                                           const int32_t scale_w,
                                           const int32_t half_pixel_centers,
                                           const mcu_nn_dims *output_dims,
                                           int8_t *output)
{
    const int32_t channels = input_dims->c;
    /* positions grow with the index: the last row and column are the farthest in */
    if (output_dims->n != input_dims->n || output_dims->c != channels || output_dims->h < 1 || output_dims->w < 1 ||
        resize_tap(output_dims->h - 1, scale_h, half_pixel_centers, input_dims->h).lower >= input_dims->h ||
        resize_tap(output_dims->w - 1, scale_w, half_pixel_centers, input_dims->w).lower >= input_dims->w)
    {
        return MCU_NN_ARG_ERROR;
    }
    const int32_t row_size = input_dims->w * channels;
    for (int32_t b = 0; b < output_dims->n; b++)
    {
        const int8_t *image = input + b * input_dims->h * row_size;
        for (int32_t y = 0; y < output_dims->h; y++)
        {
            const mcu_resize_tap ty = resize_tap(y, scale_h, half_pixel_centers, input_dims->h);
            const int8_t *row0 = image + ty.lower * row_size;
            const int8_t *row1 = image + ty.upper * row_size;
            for (int32_t x = 0; x < output_dims->w; x++)
            {
                const mcu_resize_tap tx = resize_tap(x, scale_w, half_pixel_centers, input_dims->w);
                const int8_t *p00 = row0 + tx.lower * channels;
                const int8_t *p01 = row0 + tx.upper * channels;
                const int8_t *p10 = row1 + tx.lower * channels;
                const int8_t *p11 = row1 + tx.upper * channels;
                /* |sum| < 2^29: the weights' magnitudes add up to at most 2048 per axis */
                const int32_t wx0 = (1 << 10) - tx.weight;
                const int32_t wy0 = (1 << 10) - ty.weight;
                for (int32_t c = 0; c < channels; c++)
                {
                    const int32_t sum = (p00[c] * wx0 + p01[c] * tx.weight) * wy0 +
                                        (p10[c] * wx0 + p11[c] * tx.weight) * ty.weight;
                    const int32_t rounding = sum > 0 ? (1 << 19) : -(1 << 19);
                    *output++ = (int8_t)((sum + rounding) / (1 << 20));
                }
            }
        }
    }
    return MCU_NN_SUCCESS;
}
