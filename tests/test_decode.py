import json
from pathlib import Path

import pytest

from gemmbench.analysis.decode import FAMILIES, decode, gemm_kernel, short_name

SPLITK_REDUCE = (
    "void cublasLt::splitKreduce_kernel<32, 16, int, float, float, float, float, false, float, float, float, "
    "true, false, false>(cublasLt::cublasSplitKParams<float>, float const*, float const*, float*, float const*, "
    "float const*, float const*, float const*, float*, void*, long, float*, int*)"
)
GEMVX = (
    "std::enable_if<!(false), void>::type internal::gemvx::kernel<int, int, float, float, float, float, false, true, "
    "true, false, 7, false, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, "
    "cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float>, float> >(...)"
)
COPY = (
    "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)"
    "::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::{lambda(float)#1}, std::array<char*, 2ul>, "
    "4, TrivialOffsetCalculator<1, unsigned int>, TrivialOffsetCalculator<1, unsigned int>, "
    "at::native::memory::LoadWithCast<1>, at::native::memory::StoreWithCast<1> >(int, ...)"
)


def fields(name):
    return {k: v for k, v in decode(name).to_dict().items() if k != "name"}


def test_an_sm100_nvjet_kernel_decodes_fully():
    assert fields("nvjet_sm100_tss_16x64_64x16_4x1_v_bz_TNN") == {
        "family": "nvjet",
        "arch": "sm100",
        "a_dtype": "bf16",
        "b_dtype": "bf16",
        "out_dtype": "fp32",
        "compute_dtype": "fp32",
        "math": None,
        "scale_dtype": None,
        "tile_m": 16,
        "tile_n": 64,
        "tile_k": 64,
        "stages": 16,
        "cluster_m": 4,
        "cluster_n": 1,
        "split_k": False,
        "layout": "TNN",
        "conv": None,
        "schedule": None,
        "epilogue": None,
        "recognised": True,
    }


def test_nvjet_split_k_small_m_kernel():
    info = decode("nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT")
    assert (info.arch, info.tile_m, info.tile_n, info.split_k, info.layout, info.out_dtype) == (
        "sm90",
        64,
        8,
        True,
        "TNT",
        "fp32",
    )


def test_nvjet_coop_large_m_kernel():
    info = decode("nvjet_sm90_tss_128x256_64x4_2x1_v_bz_coopA_TNN")
    assert (info.tile_m, info.tile_n, info.tile_k, info.stages, info.cluster_m, info.cluster_n, info.split_k) == (
        128,
        256,
        64,
        4,
        2,
        1,
        False,
    )


def test_nvjet_bf16_output_and_no_arch_in_older_cublas():
    info = decode("nvjet_tst_64x8_64x16_4x1_v_bz_TNT")
    assert (info.arch, info.a_dtype, info.compute_dtype, info.out_dtype) == (None, "bf16", "fp32", "bf16")


def test_nvjet_five_letter_types_and_2cta():
    info = decode("nvjet_sm100_qqtst_128x256_128x6_2x1_2cta_h_bz_TNT")
    assert (info.a_dtype, info.b_dtype, info.compute_dtype, info.out_dtype) == ("fp8_e4m3", "fp8_e4m3", "fp32", "bf16")
    assert (info.tile_k, info.stages, info.cluster_m, info.layout) == (128, 6, 2, "TNT")


def test_nvjet_fp4_and_fp16_letters():
    info = decode("nvjet_sm100_oohsh_128x128_256x4_1x1_v_bz_TNT")
    assert (info.a_dtype, info.b_dtype, info.compute_dtype, info.out_dtype) == ("fp4_e2m1", "fp4_e2m1", "fp32", "fp16")


def test_xmma_bf16_tensor_core_gemm():
    info = decode(
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas"
    )
    assert (info.family, info.arch, info.a_dtype, info.out_dtype, info.compute_dtype) == (
        "xmma",
        "sm90",
        "bf16",
        "bf16",
        "fp32",
    )
    assert (info.tile_m, info.tile_n, info.tile_k, info.layout) == (128, 128, 64, "tn")


def test_xmma_fp32_simt_gemm():
    info = decode(
        "sm80_xmma_gemm_f32f32_f32f32_f32_nn_n_tilesize32x32x8_stage3_warpsize1x2x1_ffma_aligna4_alignc4_execute_kernel__5x_cublas"
    )
    assert (info.arch, info.a_dtype, info.out_dtype, info.tile_k, info.stages, info.split_k) == (
        "sm80",
        "fp32",
        "fp32",
        8,
        3,
        None,
    )


def test_xmma_split_k_is_read_from_cublas_naming():
    # recorded on an H200 (docs/runs/h200_deepseek_v3_cold_a.json, upcast at M = 4096)
    name = (
        "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize128x128x8_stage3_warpsize2x2x1_ffma_aligna4_alignc4"
        "_execute_split_k_kernel__5x_cublas"
    )
    info = decode(name)
    assert (info.split_k, info.tile_m, info.tile_n, info.tile_k) == (True, 128, 128, 8)


def test_cutlass_tensorop():
    info = decode("cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x4_tn_align8")
    assert (info.family, info.arch, info.a_dtype, info.compute_dtype, info.out_dtype) == (
        "cutlass",
        "sm80",
        "bf16",
        "fp32",
        "bf16",
    )
    assert (info.tile_m, info.tile_n, info.tile_k, info.stages, info.layout) == (64, 64, 64, 4, "tn")


@pytest.mark.parametrize(
    "name",
    [
        "cutlass_80_simt_sgemm_128x64_8x5_tn_align1",
        "void cutlass::Kernel2<cutlass_80_simt_sgemm_128x64_8x5_tn_align1>(cutlass_80_simt_sgemm_128x64_8x5_tn_align1::Params)",  # noqa: E501
    ],
)
def test_cutlass_simt_sgemm_plain_and_wrapped(name):
    info = decode(name)
    assert (info.family, info.arch, info.a_dtype, info.compute_dtype, info.out_dtype) == (
        "cutlass",
        "sm80",
        "fp32",
        "fp32",
        "fp32",
    )
    assert (info.tile_m, info.tile_n, info.tile_k, info.stages, info.layout) == (128, 64, 8, 5, "tn")


def test_cutlass3x_name():
    info = decode(
        "cutlass3x_sm90_tensorop_s64x128x16gemm_bf16_bf16_f32_bf16_bf16_128x128x64_1x1x1_0_tnn_align8_warpspecialized_cooperative_epi_tma"
    )
    assert (info.family, info.arch, info.a_dtype, info.out_dtype, info.tile_m, info.cluster_m) == (
        "cutlass",
        "sm90",
        "bf16",
        "bf16",
        128,
        1,
    )


@pytest.mark.parametrize(
    "name, family",
    [
        (SPLITK_REDUCE, "splitk_reduce"),
        (GEMVX, "gemv"),
        (COPY, "elementwise"),
        ("Memset (Device)", "memset"),
        ("my_custom_kernel", "other"),
        ("", "other"),
    ],
)
def test_helper_kernels(name, family):
    assert decode(name).family == family


def test_every_family_is_known():
    assert {decode(n).family for n in (SPLITK_REDUCE, GEMVX, COPY, "x")} <= set(FAMILIES)


def test_gemm_kernel_picks_the_gemm_among_helpers():
    assert (
        gemm_kernel([COPY, "nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT", COPY]) == "nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT"
    )
    assert gemm_kernel([COPY, "Memset (Device)"]) is None


def test_short_name_elides_templates_and_return_types():
    assert short_name(GEMVX) == "internal::gemvx::kernel<…>"
    assert short_name(COPY) == "at::native::unrolled_elementwise_kernel<direct_copy_kernel_cuda…>"
    assert (
        short_name("nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT") == "nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT"
    )


# The six kinds of name the decoder once misread, each with the fields it states.
FORMERLY_MISREAD = {
    "nvjet_sm100_tst_128x256_64x6_2x2f_2cta_h_bz_TNT": dict(
        arch="sm100", tile_m=128, tile_n=256, tile_k=64, stages=6, cluster_m=2, cluster_n=2, out_dtype="bf16"
    ),
    "nvjet_sm120_qqtst_mma_64x128x64_8_32x64x64_tmaAB_bz_TNNN": dict(
        a_dtype="fp8_e4m3",
        b_dtype="fp8_e4m3",
        out_dtype="bf16",
        compute_dtype="fp32",
        tile_m=64,
        tile_n=128,
        tile_k=64,
        stages=8,
        layout="TNNN",
    ),
    "nvjet_sm120_hhh_mma_64x64x128_tmaAB_bz_NNNN": dict(tile_m=64, tile_n=64, tile_k=128, stages=None),
    "sm90_xmma_gemm_bf16f32_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_segment_k_off_kernel__5x_cublas": dict(  # noqa: E501
        a_dtype="bf16", b_dtype="bf16", out_dtype="fp32", compute_dtype="fp32", math=None
    ),
    "cutlass_80_wmma_tensorop_s161616gemm_f16_32x32_128x2_tn_align8": dict(
        a_dtype="fp16", out_dtype="fp32", compute_dtype="fp32", tile_m=32, tile_n=32, tile_k=128, stages=2
    ),
    "cutlass_80_tensorop_h16816gemm_64x64_64x6_nn_align8": dict(a_dtype="fp16", out_dtype="fp16", compute_dtype="fp16"),
    "cutlass3x_sm100_tensorop_s64x256x32gemm_f8_f8_f32_f16_f16_64x256x128_1x1x1_0_tnn_align4_1sm_bias_f16_relu_aux_scalemax": dict(  # noqa: E501
        a_dtype="fp8",
        b_dtype="fp8",
        compute_dtype="fp32",
        out_dtype="fp16",
        tile_m=64,
        tile_n=256,
        tile_k=128,
        stages=None,
        cluster_m=1,
        layout="tnn",
    ),
    "cutlass3x_sm90_tensorop_gemm_bf16_bf16_f32_void_bf16_128x128x64_2x1x1_3_nnn_align8": dict(
        a_dtype="bf16", out_dtype="bf16", stages=3, cluster_m=2, layout="nnn"
    ),
    "cutlass3x_sm100_bstensorop_s128x256x64gemm_ue4m3xf4_ue4m3xf4_f32_void_bf16_128x256x256_1x1x1_0_tnt_align32_2sm": dict(  # noqa: E501
        a_dtype="fp4", scale_dtype="ue4m3", out_dtype="bf16", compute_dtype="fp32", tile_k=256
    ),
    "cutlass_80_tensorop_s8_i16832gemm_s8_128x256_64x3_tn_align16": dict(
        a_dtype="int8", out_dtype="int8", compute_dtype="int32"
    ),
    "cutlass_tensorop_s16816gemm_f16_256x128_32x3_nn_align8": dict(family="cutlass", arch=None, a_dtype="fp16"),
    "ampere_bf16_s16816gemm_bf16_128x256_ldg8_f2f_stages_64x3_tn": dict(
        family="cublas",
        arch="ampere",
        a_dtype="bf16",
        out_dtype="bf16",
        compute_dtype="fp32",
        tile_m=128,
        tile_n=256,
        tile_k=64,
        stages=3,
        layout="tn",
    ),
    "volta_sgemm_64x32_sliced1x4_nn": dict(family="cublas", arch="volta", a_dtype="fp32", tile_m=64, layout="nn"),
    "void cutlass::device_kernel<cutlass::gemm::kernel::GemmUniversal<cute::tuple<int, int, int, int>, "
    "cutlass::gemm::collective::CollectiveMma<cutlass::gemm::MainloopSm90ArrayTmaGmmaWarpSpecialized<(int)12, "
    "cute::tuple<cute::C<(int)2>, cute::C<(int)1>, cute::C<(int)1> >, cutlass::gemm::KernelPtrArrayTmaWarpSpecialized"
    "Cooperative>, cute::tuple<cute::C<(int)128>, cute::C<(int)256>, cute::C<(int)64> >, cutlass::bfloat16_t, "
    "cute::tuple<long, cute::C<(int)1>, cute::C<(int)0> >, cutlass::bfloat16_t...": dict(
        family="cutlass",
        arch="sm90",
        stages=12,
        cluster_m=2,
        cluster_n=1,
        tile_m=128,
        tile_n=256,
        tile_k=64,
        a_dtype="bf16",
        b_dtype="bf16",
    ),
}


@pytest.mark.parametrize("name", FORMERLY_MISREAD)
def test_names_once_misread_give_the_fields_they_state(name):
    info = decode(name).to_dict()
    assert info["recognised"]
    assert {k: info[k] for k in FORMERLY_MISREAD[name]} == FORMERLY_MISREAD[name]


def test_the_gemm_of_a_call_is_found_among_templated_cutlass_kernels():
    reduce = "void cutlass::Kernel2<cutlass::reduction::kernel::ReduceSplitK<cutlass::MatrixShape<4, 128> > >(...)"
    templated = next(name for name in FORMERLY_MISREAD if name.startswith("void cutlass::device_kernel"))
    assert gemm_kernel([COPY, templated, reduce]) == templated
    assert decode(reduce).family == "splitk_reduce"


def test_nvjet_tf32_and_block_scale_tokens_of_the_grammar():
    tf32 = decode("nvjet_sm90_sss_tf32_128x128_32x4_1x1_v_bz_NNT")
    assert (tf32.a_dtype, tf32.math, tf32.tile_m) == ("fp32", "tf32", 128)
    scaled = decode("nvjet_sm100_oohsh_128x256_256x4_2x1_2cta_v_bz_Avec16UE4M3_Bvec16UE4M3_TNT")
    assert scaled.scale_dtype == "ue4m3"


REAL_NAMES = json.loads((Path(__file__).parent / "fixtures" / "kernel_names.json").read_text())


def test_the_fixture_holds_many_real_names_each_with_its_source():
    assert len(REAL_NAMES) >= 60 and len({entry["name"] for entry in REAL_NAMES}) == len(REAL_NAMES)
    assert all(entry["source"]["repo"] and entry["source"]["where"] for entry in REAL_NAMES)
    # every family but gemmbench's own kernels, which no public trace shows
    assert {entry["expected"]["family"] for entry in REAL_NAMES} >= set(FAMILIES) - {"other", "gemmbench"}


def test_gemmbench_own_kernel_is_a_family_of_its_own():
    cuda_kernel = "void gemmbench_router_small_m_ext<1>(__nv_bfloat16 const*, __nv_bfloat16 const*, float*, int, int)"
    assert decode(cuda_kernel).family == "gemmbench" and decode(cuda_kernel).is_gemm
    info = decode("gemmbench_router_small_m")
    assert info.family == "gemmbench" and info.is_gemm and info.recognised and info.a_dtype is None


def test_the_dsv3_router_kernels_read_by_their_template_arguments():
    """TensorRT-LLM's router GEMM as sgl-kernel's JIT build names it (a PDL flag last) and as its own build
    does (the output type in the name), and kernels of those names with other arguments, which are not it."""
    sgl = "void dsv3_router_jit::router_gemm_kernel<__nv_bfloat16, __nv_bfloat16, 128, 8, 3, 256, 7168, true>(...)"
    info = decode(sgl)
    assert (info.family, info.out_dtype, info.tile_m, info.tile_n, info.tile_k) == ("dsv3_router", "bf16", 3, 1, 1024)
    assert info.is_gemm and info.compute_dtype is None  # the accumulator is not in the name
    assert decode("void router_gemm_kernel<128, 2, 4, 1>(float*, __nv_bfloat16 const*, float const*)").family == "other"
    # TensorRT-LLM's own naming, which sgl-kernel's dsv3_router_gemm op and vLLM's _moe_C op launch
    aot = "void router_gemm_kernel_float_output<__nv_bfloat16, 128, 8, 4, 256, 7168>(float*, __nv_bfloat16 const*, ...)"
    info = decode(aot)
    assert (info.family, info.a_dtype, info.out_dtype, info.tile_m, info.tile_k) == (
        "dsv3_router",
        "bf16",
        "fp32",
        4,
        1024,
    )
    assert decode(aot.replace("float_output", "bf16_output")).out_dtype == "bf16"
    two_types = "void router_gemm_kernel_float_output<__nv_bfloat16, __nv_bfloat16, 8, 128, 4, 7168>(...)"
    assert decode(two_types).family == "other"  # another argument order: not read


@pytest.mark.parametrize("entry", REAL_NAMES, ids=lambda entry: entry["name"][:60])
def test_real_kernel_names_give_the_fields_they_state(entry):
    decoded = decode(entry["name"]).to_dict()
    assert {key: decoded[key] for key in entry["expected"]} == entry["expected"], entry["source"]


def test_decode_json_on_the_command_line_gives_the_same_fields():
    from typer.testing import CliRunner

    from gemmbench.cli import app

    names = list(FORMERLY_MISREAD)
    result = CliRunner().invoke(app, ["decode", "--json", *names])
    assert result.exit_code == 0, result.output
    for name, info in zip(names, json.loads(result.stdout), strict=True):
        assert info["name"] == name and {k: info[k] for k in FORMERLY_MISREAD[name]} == FORMERLY_MISREAD[name]


def test_a_block_scaled_cutlass_profiler_kernel_decodes_its_types_and_tile():
    """As torch._scaled_mm ran an nvfp4 GEMM on a B200 in a public benchmark trace."""
    name = (
        "cutlass3x_sm100_bstensorop_s256x128x64gemm_block_scaled_ue4m3xf4_ue4m3xf4_f32_f16_f16_256x128x256_0_tnn_"
        "align32_o_vs16_2sm_bias_f16_relu"
    )
    info = decode(name)
    assert (info.family, info.arch, info.a_dtype, info.b_dtype, info.scale_dtype) == (
        "cutlass",
        "sm100",
        "fp4",
        "fp4",
        "ue4m3",
    )
    assert (info.compute_dtype, info.out_dtype, info.tile_m, info.tile_n, info.tile_k) == (
        "fp32",
        "fp16",
        256,
        128,
        256,
    )
    assert info.stages is None and info.layout == "tnn"  # stage count 0: chosen by CUTLASS


def test_a_cutlass_gemm_inside_torchs_arch_guard_is_a_cutlass_gemm_even_cut_short():
    """As a public profile of an sm90 training step lists it, cut at 90 characters."""
    info = decode("void cutlass::device_kernel<at::cuda::detail::enable_3x_kernel_for_sm9x<cutlass::gemm::ker")
    assert (info.family, info.arch, info.recognised) == ("cutlass", "sm9x", True)
    assert info.tile_m is None and info.a_dtype is None  # cut before the template arguments: never guessed


# cuDNN's CUTLASS 3.x convolutions on a B300 (sm100): torch.profiler's top kernels of a WanVAE decode, in
# davidrd123/scope, outputs/b300_cu130_triton351_wanvae_decode_ops_i50_ensurecontig.md
# (commit 23b37425cdcb851c8edd0717d3b37a42a4d25ef5). The first of CONVOLUTIONS is also the name cuDNN ran a
# conv2d under on an sm100 GPU in a public ncu report.
CONVOLUTIONS = {
    "cutlass3x_sm100_tensorop_s256x256x16implicit_gemm_fprop_f16_f16_f32_void_f16_f32_256x256x64_dyn_cga_"
    "ndhwc_ndhwc_ndhwc_align8_2sm_relu_valpha": dict(
        a_dtype="fp16", out_dtype="fp16", tile_m=256, tile_n=256, schedule="2sm", epilogue="relu_valpha"
    ),
    "cutlass3x_sm100_tensorop_s256x128x16implicit_gemm_fprop_bf16_bf16_f32_void_bf16_f32_256x128x64_dyn_cga_"
    "ndhwc_ndhwc_ndhwc_align8_2sm_relu_valpha": dict(
        a_dtype="bf16", out_dtype="bf16", tile_m=256, tile_n=128, schedule="2sm", epilogue="relu_valpha"
    ),
    "cutlass3x_sm100_tensorop_s128x128x16implicit_gemm_fprop_bf16_bf16_f32_void_bf16_f32_128x128x64_dyn_cga_"
    "ndhwc_ndhwc_ndhwc_align8_2sm_relu_valpha": dict(
        a_dtype="bf16", out_dtype="bf16", tile_m=128, tile_n=128, schedule="2sm", epilogue="relu_valpha"
    ),
    # a weight-stationary conv3d: `conv3d_fprop_<variant>` where the others write `implicit_gemm_fprop`, the
    # filter's extent (t3xr3xs3) before the tile, no alignment and no epilogue
    "cutlass3x_sm100_tensorop_s32x256x16_conv3d_fprop_weight_stationary_nq_2d_tiled_bf16_bf16_f32_void_bf16_void_"
    "t3xr3xs3_32x256x64_dyn_cga_ndhwc_ndhwc_ndhwc_1sm": dict(
        a_dtype="bf16", out_dtype="bf16", tile_m=32, tile_n=256, schedule="1sm", epilogue=None
    ),
}


@pytest.mark.parametrize("name", CONVOLUTIONS, ids=lambda name: name[25:75])
def test_a_cutlass3x_convolution_says_it_is_one_with_its_types_tile_schedule_and_epilogue(name):
    info = decode(name)
    assert (info.family, info.arch, info.conv, info.compute_dtype, info.tile_k) == (
        "cutlass",
        "sm100",
        "fprop",
        "fp32",
        64,
    )
    assert info.b_dtype == info.a_dtype and info.is_gemm  # an implicit GEMM
    assert info.cluster_m is None and info.stages is None and info.layout is None  # `dyn_cga`: chosen at launch
    assert {key: getattr(info, key) for key in CONVOLUTIONS[name]} == CONVOLUTIONS[name]


def test_convolution_spellings_of_the_grammar_say_their_kind():
    # The spelling this project was told of: an instruction shape glued to `implicit_gemm`, then a GEMM's
    # cluster, stages, layout and schedule (no public trace of it was found).
    glued = decode(
        "cutlass3x_sm100_tensorop_s256x256x16implicit_gemm_fprop_f16_f16_f32_f16_f16_256x128x64_1x1x1_0_tnt_"
        "align8_warpspecialized_2sm_epi_tma"
    )
    assert (glued.conv, glued.a_dtype, glued.out_dtype, glued.compute_dtype, glued.tile, glued.cluster) == (
        "fprop",
        "fp16",
        "fp16",
        "fp32",
        "256x128x64",
        "1x1",
    )
    assert (glued.stages, glued.layout, glued.schedule, glued.epilogue) == (
        None,
        "tnt",
        "warpspecialized_2sm",
        "epi_tma",
    )
    # The CUTLASS profiler's own convolution names (NVIDIA/cutlass, python/cutlass_library/generator.py,
    # ConvOperation3x.configuration_name): the kind in the operation's place, each type glued to its tensor
    # layout.
    for kind, out in (("fprop", "f16nhwc"), ("dgrad", "f16nhwc"), ("wgrad", "f32kcsr")):
        info = decode(
            f"cutlass3x_sm90_tensorop_{kind}_f16nhwc_f16nhwc_f32_{out[:3]}_{out}_128x128x64_2x1x1_0_align8_"
            "warpspecialized_cooperative_epi_tma"
        )
        assert (info.conv, info.a_dtype, info.out_dtype, info.tile_n, info.cluster, info.schedule) == (
            kind,
            "fp16",
            "fp16" if kind != "wgrad" else "fp32",
            128,
            "2x1",
            "warpspecialized_cooperative",
        )
    assert decode("cutlass3x_sm90_tensorop_s64x128x16gemm_bf16_bf16_f32_bf16_bf16_128x128x64_1x1x1_0_tnn").conv is None


def test_cutlass3x_gemm_names_give_their_kernel_schedule_and_epilogue_apart():
    cooperative = decode(
        "cutlass3x_sm90_tensorop_s64x128x16gemm_bf16_bf16_f32_bf16_bf16_128x128x64_1x1x1_0_tnn_align8_"
        "warpspecialized_cooperative_epi_tma"
    )
    assert (cooperative.schedule, cooperative.epilogue) == ("warpspecialized_cooperative", "epi_tma")
    fused = decode(
        "cutlass3x_sm100_tensorop_s64x256x32gemm_f8_f8_f32_f16_f16_64x256x128_1x1x1_0_tnn_align4_1sm_bias_f16_relu_"
        "aux_scalemax"
    )
    assert (fused.schedule, fused.epilogue) == ("1sm", "bias_f16_relu_aux_scalemax")
    plain = decode("cutlass3x_sm90_tensorop_gemm_bf16_bf16_f32_void_bf16_128x128x64_2x1x1_3_nnn_align8")
    assert (plain.schedule, plain.epilogue, plain.stages) == (None, None, 3)


# The kernel PyTorch's rowwise-scaled mm runs on sm90 for a 128x128x128 tile, spelled as nsys prints
# templates (`cute::C<128>`, no `(int)`): its template arguments are those of aten/src/ATen/native/cuda/
# RowwiseScaledMM.cu (pytorch/pytorch), enable_3x_kernel_for_sm9x around GemmUniversal with
# KernelTmaWarpSpecializedCooperative; the name is composed from them (no public trace prints it whole).
TORCH_ROWWISE = (
    "void cutlass::device_kernel<at::cuda::detail::enable_3x_kernel_for_sm9x<cutlass::gemm::kernel::GemmUniversal<"
    "cute::tuple<int, int, int>, cutlass::gemm::collective::CollectiveMma<cutlass::gemm::"
    "MainloopSm90TmaGmmaWarpSpecialized<4, cute::tuple<cute::C<2>, cute::C<1>, cute::C<1>>, cutlass::gemm::"
    "KernelTmaWarpSpecializedCooperative>, cute::tuple<cute::C<128>, cute::C<128>, cute::C<128>>, "
    "cutlass::float_e4m3_t, cute::tuple<long, cute::C<1>, long>, cutlass::float_e4m3_t, cute::tuple<long, "
    "cute::C<1>, long>, cute::TiledMMA<cute::MMA_Atom<cute::SM90_64x128x32_F32E4M3E4M3_SS_TN<>>>>, "
    "cutlass::epilogue::collective::CollectiveEpilogue<cutlass::epilogue::Sm90TmaWarpSpecialized<4, 2, 32, false, "
    "false>>>>>(cutlass::gemm::kernel::GemmUniversal<...>::Params)"
)


def test_a_templated_cutlass_gemm_in_torchs_arch_guard_gives_what_its_template_arguments_hold():
    info = decode(TORCH_ROWWISE)
    assert (info.family, info.arch, info.tile, info.stages, info.cluster) == (
        "cutlass",
        "sm90",
        "128x128x128",
        4,
        "2x1",
    )
    assert (info.a_dtype, info.b_dtype, info.compute_dtype) == ("fp8_e4m3", "fp8_e4m3", "fp32")
    assert (info.schedule, info.epilogue) == ("KernelTmaWarpSpecializedCooperative", "Sm90TmaWarpSpecialized")
    assert info.out_dtype is None and info.layout is None  # the name holds them only as strides: left out
    # torch.profiler's spelling, `(int)` before each integer: the real name of FORMERLY_MISREAD
    templated = decode(next(name for name in FORMERLY_MISREAD if name.startswith("void cutlass::device_kernel")))
    assert (templated.schedule, templated.tile, templated.cluster) == (
        "KernelPtrArrayTmaWarpSpecializedCooperative",
        "128x256x64",
        "2x1",
    )


CUT_SHORT = [TORCH_ROWWISE, *CONVOLUTIONS, *(name for name in FORMERLY_MISREAD if "cutlass3x" in name or "::" in name)]


@pytest.mark.parametrize("name", CUT_SHORT, ids=lambda name: name[:50])
def test_a_cutlass_name_cut_anywhere_decodes_what_it_holds_and_never_misreads(name):
    whole = decode(name).to_dict()
    for cut in range(len(name) + 1):
        for shown in (name[:cut], name[:cut] + "...", name[:cut] + "…"):
            info = decode(shown).to_dict()  # never raises
            read = {key: value for key, value in info.items() if value is not None}
            read.pop("name"), read.pop("recognised"), read.pop("family")
            read.pop("schedule", None), read.pop("epilogue", None)  # their last word may be cut
            if read.get("arch") == "sm9x":  # torch's guard, before the mainloop names sm90
                assert read.pop("arch")[:3] == whole["arch"][:3]
            assert read == {key: whole[key] for key in read}, shown
    at_90 = decode(TORCH_ROWWISE[:90])  # as profiles cut it: the guard, nothing more
    assert (at_90.family, at_90.arch, at_90.tile_m, at_90.schedule) == ("cutlass", "sm9x", None, None)
    at_100 = decode(TORCH_ROWWISE[:100])
    assert (at_100.arch, at_100.tile_m, at_100.a_dtype) == ("sm9x", None, None)


def test_decode_json_says_which_kernel_is_a_convolution():
    from typer.testing import CliRunner

    from gemmbench.cli import app

    names = list(CONVOLUTIONS)[:2]
    result = CliRunner().invoke(app, ["decode", "--json", *names])
    assert result.exit_code == 0, result.output
    assert [(info["conv"], info["schedule"], info["epilogue"]) for info in json.loads(result.stdout)] == [
        ("fprop", "2sm", "relu_valpha")
    ] * 2
