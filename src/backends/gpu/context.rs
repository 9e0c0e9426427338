//! The GPU context: one struct owning the device, the queue and every compute pipeline.
//!
//! Set-up, in order: an instance (backends from `WGPU_BACKEND`, else all native ones), an
//! adapter (high performance), a device with the adapter's buffer limits (so large weights
//! fit), then pipelines built on first use from `shaders/*.wgsl` and cached by name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};


/// Kernel sources, embedded at build time.
pub mod sources {
    pub const DEQUANT: &str = include_str!("../../../shaders/dequant.wgsl");
    pub const MATMUL: &str = include_str!("../../../shaders/matmul.wgsl");
    pub const MATMUL_REG: &str = include_str!("../../../shaders/matmul_reg.wgsl");
    pub const MATMUL_COMMON: &str = include_str!("../../../shaders/matmul_common.wgsl");
    pub const EMBED: &str = include_str!("../../../shaders/embed.wgsl");
    pub const RMSNORM: &str = include_str!("../../../shaders/rmsnorm.wgsl");
    pub const ROPE: &str = include_str!("../../../shaders/rope.wgsl");
    pub const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");
    pub const FLASH_ATTENTION: &str = include_str!("../../../shaders/flash_attention.wgsl");
    pub const NAIVE_ATTENTION: &str = include_str!("../../../shaders/naive_attention.wgsl");
    #[cfg(any(test, feature = "test-support"))]
    pub const ATTENTION_MAPS: &str = include_str!("../../../shaders/attention_maps.wgsl");
    pub const ARGMAX: &str = include_str!("../../../shaders/argmax.wgsl");

    /// Every kernel's source as compiled: the shared constants, then the kernel.
    pub fn with_prelude(kernel: &str) -> String {
        format!("{}{kernel}", super::super::ops::wgsl_constants())
    }

    /// A weight-reading kernel specialised to one storage format; the format constants come
    /// from `weights.rs`, the one place that defines them. Kernels that read weights one
    /// element at a time get `dequant.wgsl` too (`matmul_reg.wgsl` reads whole blocks itself,
    /// and has its tile written out by [`with_register_tile`]).
    pub fn with_format(kernel: &str, format: u32) -> String {
        use super::super::weights::{FORMAT_F32, FORMAT_Q4, FORMAT_Q8, FORMAT_Q8S16};
        let (dequant, kernel) = if kernel == MATMUL_REG {
            ("", format!("{MATMUL_COMMON}{}", with_register_tile(kernel, super::super::ops::REG_ROWS as usize, super::super::ops::REG_TOKENS as usize)))
        } else if kernel == MATMUL {
            (DEQUANT, format!("{MATMUL_COMMON}{kernel}"))
        } else {
            (DEQUANT, kernel.to_string())
        };
        format!("const FORMAT: u32 = {format}u;\nconst FORMAT_Q4: u32 = {FORMAT_Q4}u;\nconst FORMAT_Q8: u32 = {FORMAT_Q8}u;\nconst FORMAT_F32: u32 = {FORMAT_F32}u;\nconst FORMAT_Q8S16: u32 = {FORMAT_Q8S16}u;\n{dequant}\n{kernel}")
    }

    /// `matmul_reg.wgsl` with its `rows` × `tokens` tile as straight-line code: named
    /// accumulators `a{token}_{row}`, one block `b{row}` and one x vector `x{token}` per chunk.
    pub fn with_register_tile(kernel: &str, rows: usize, tokens: usize) -> String {
        let mut setup = String::new();
        for j in 0..rows {
            setup += &format!("let row{j} = min(r0 + {j}u, p.rows - 1u); ");
        }
        for i in 0..tokens {
            setup += &format!("let xb{i} = (p.x_row0 + min(t0 + {i}u, p.n - 1u)) * cols4; ");
            for j in 0..rows {
                setup += &format!("var a{i}_{j} = 0.0; ");
            }
        }
        let load: String = (0..rows).map(|j| format!("let b{j} = load_block(row{j}, blk); ")).collect();
        let mut chunk: String = (0..tokens).map(|i| format!("let x{i} = x[xb{i} + xc]; ")).collect();
        for j in 0..rows {
            chunk += &format!("let w{j} = weights4(b{j}, row{j}, blk, c); ");
            for i in 0..tokens {
                chunk += &format!("a{i}_{j} += dot(x{i}, w{j}); ");
            }
        }
        let mut store = String::new();
        for i in 0..tokens {
            for j in 0..rows {
                store += &format!("if (t0 + {i}u < p.n && r0 + {j}u < p.rows) {{ y[(t0 + {i}u) * p.out_stride + p.out_col0 + r0 + {j}u] = a{i}_{j}; }} ");
            }
        }
        kernel.replace("UNROLLED_SETUP", &setup).replace("UNROLLED_LOAD_BLOCKS", &load).replace("UNROLLED_CHUNK", &chunk).replace("UNROLLED_STORE", &store)
    }

    /// Where an attention kernel's dot product reads its operands.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum DotOperands {
        /// flash_attention.wgsl: q in registers (`qv`), k staged in workgroup memory (`k_tile`).
        RegistersAndTile,
        /// attention_maps.wgsl, naive_attention.wgsl: both from storage at offsets `qb`, `kb`.
        Storage,
    }

    /// Keys per staged K/V tile of the flash kernel: 8 KiB of workgroup memory for K and V.
    pub fn flash_keys_per_tile(head_dim: usize) -> usize {
        (1024 / head_dim).clamp(1, 16)
    }

    /// `flash_attention.wgsl` (already [`with_head_dim`]) with its decode kernels built for
    /// steps of `n` queries, `heads` query heads per workgroup (the source's defaults,
    /// `DECODE_MAX_N` and 1, are what naga validates).
    pub fn with_decode_rows(kernel: &str, n: usize, heads: usize) -> String {
        let (n_default, heads_default) = ("const DECODE_N: u32 = DECODE_MAX_N;", "const DECODE_HEADS: u32 = 1u;");
        assert!(kernel.contains(n_default) && kernel.contains(heads_default), "not the flash-decoding source");
        kernel.replace(n_default, &format!("const DECODE_N: u32 = {n}u;")).replace(heads_default, &format!("const DECODE_HEADS: u32 = {heads}u;"))
    }

    /// An attention kernel specialised to one head size, with its `UNROLLED_*` markers
    /// expanded into straight-line vec4 code over the head dimension.
    pub fn with_head_dim(kernel: &str, head_dim: usize, operands: DotOperands) -> String {
        let hd4 = head_dim / 4;
        let dot = match operands {
            DotOperands::RegistersAndTile => (0..hd4).map(|i| format!("dot(qv[{i}], k_tile[kb + {i}u])")).collect::<Vec<_>>().join(" + "),
            DotOperands::Storage => (0..hd4).map(|i| format!("dot(q[qb + {i}u], k[kb + {i}u])")).collect::<Vec<_>>().join(" + "),
        };
        let rescale = (0..hd4).map(|i| format!("acc[{i}] = acc[{i}] * corr;")).collect::<Vec<_>>().join(" ");
        let accumulate = (0..hd4).map(|i| format!("acc[{i}] = fma(vec4<f32>(pj), v_tile[kb + {i}u], acc[{i}]);")).collect::<Vec<_>>().join(" ");
        // flash_attention.wgsl's decode kernel: each 4 values of a key loaded once for every
        // row's query (in workgroup memory, `dq`), summed into the rows' scores `sc`.
        let decode_dots = (0..hd4).map(|i| format!("{{ let kk = k[kb + {i}u]; for (var r = 0u; r < DECODE_ROWS; r++) {{ sc[r] += dot(dq[r * HD4 + {i}u], kk); }} }}")).collect::<Vec<_>>().join(" ");
        let body = kernel.replace("UNROLLED_DECODE_DOTS", &decode_dots).replace("UNROLLED_DOT", &dot).replace("UNROLLED_RESCALE", &rescale).replace("UNROLLED_ACCUMULATE", &accumulate);
        format!("const HEAD_DIM: u32 = {head_dim}u;\nconst BC: u32 = {}u;\n{body}", flash_keys_per_tile(head_dim))
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GpuError {
    #[error("no GPU adapter was found ({0})")]
    NoAdapter(String),
    #[error("the GPU refused to open a device: {0}")]
    Device(String),
    #[error("the GPU lacks what attnlab needs: {0}")]
    Limits(String),
    #[error("a GPU operation failed: {0}")]
    Operation(String),
    #[error("the GPU device was lost: {0}")]
    Lost(String),
}

/// How a kernel sees each binding (explicit layouts, so unused bindings are allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    lost: Arc<Mutex<Option<String>>>,
    /// Whether the device writes timestamps at the start and end of compute passes.
    pub timestamps: bool,
    /// While profiling: every dispatch's pass gets two timestamps.
    profile: Mutex<Option<Profile>>,
    /// Which kernel runs matrix multiplications (registers unless a benchmark asks otherwise).
    matmul: Mutex<MatmulKernel>,
    /// Whether decoding steps over long caches take the flash-decoding kernels (on unless a
    /// benchmark compares them with the flash kernel alone): [`super::ops::attention`].
    split_decode: AtomicBool,
}

/// The two matrix-multiplication kernels, kept side by side so a benchmark can compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// `matmul_reg.wgsl`: register tiles, whole quant blocks per load, no workgroup memory.
    Registers,
    /// `matmul.wgsl`: the first kernel, tiles staged element by element in workgroup memory.
    Workgroup,
}

impl MatmulKernel {
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Workgroup => "workgroup",
        }
    }

    pub fn parse(s: &str) -> Option<MatmulKernel> {
        [MatmulKernel::Registers, MatmulKernel::Workgroup].into_iter().find(|k| k.name() == s)
    }
}

/// What a dispatch computes, for GFLOP/s and GB/s in profiles (0: not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    pub flops: f64,
    pub bytes: f64,
}

/// One profiled dispatch: its label, its work, and its GPU time.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub label: String,
    pub work: Work,
    pub ms: f64,
}

struct Profile {
    queries: wgpu::QuerySet,
    /// (label, work) of each timed pass, in order: pass k wrote queries 2k and 2k + 1.
    passes: Vec<(String, Work)>,
}

/// Passes one profile can time (two queries each).
const PROFILE_PASSES: u32 = 2048;

impl GpuContext {
    /// Opens the first high-performance adapter. `WGPU_BACKEND=vulkan` selects lavapipe on CI.
    pub async fn new() -> Result<GpuContext, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let available = adapter.limits();
        // Weights are bound whole where the adapter allows it; larger tensors are split.
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: available.max_storage_buffer_binding_size,
            max_buffer_size: available.max_buffer_size,
            max_storage_buffers_per_shader_stage: 8.min(available.max_storage_buffers_per_shader_stage),
            ..wgpu::Limits::downlevel_defaults()
        };
        if available.max_compute_workgroup_storage_size < 16384 || available.max_compute_invocations_per_workgroup < 256 {
            return Err(GpuError::Limits(format!(
                "{} offers {} bytes of workgroup memory and {} invocations per workgroup (16384 and 256 needed)",
                info.name, available.max_compute_workgroup_storage_size, available.max_compute_invocations_per_workgroup
            )));
        }
        // Timestamps inside passes let `attnlab bench gpu` time every kernel (when offered).
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let required_features = if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor { label: Some("attnlab device"), required_limits: required_limits.clone(), required_features, ..Default::default() })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = lost_flag.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        // Errors nobody captured (a destroyed device, out of memory) mark the device unusable
        // instead of panicking: the engine then finishes on the CPU and says why.
        let error_flag = lost.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut l) = error_flag.lock() {
                if l.is_none() {
                    *l = Some(format!("GPU error: {e}"));
                }
            }
        }));
        Ok(GpuContext { device, queue, adapter_info: info, limits: required_limits, kernels: Mutex::new(HashMap::new()), lost, timestamps, profile: Mutex::new(None), matmul: Mutex::new(MatmulKernel::Registers), split_decode: AtomicBool::new(true) })
    }

    /// Blocking variant for native callers (CLI, tests).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<GpuContext, GpuError> {
        pollster::block_on(Self::new())
    }

    /// Hardware, or a software renderer (see [`super::adapter`]).
    pub fn adapter_kind(&self) -> super::adapter::AdapterKind {
        let i = &self.adapter_info;
        super::adapter::classify(&[&i.name, &i.driver, &i.driver_info], i.device_type == wgpu::DeviceType::Cpu)
    }

    /// "name (backend)" of the adapter.
    pub fn describe(&self) -> String {
        let i = &self.adapter_info;
        if i.name.is_empty() {
            // Browsers hide the adapter's name; say what we know.
            let detail = [i.driver.as_str(), i.driver_info.as_str()].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" ");
            if detail.is_empty() { format!("{:?} adapter", i.backend) } else { format!("{:?} adapter ({detail})", i.backend) }
        } else {
            format!("{} ({:?})", i.name, i.backend)
        }
    }

    pub fn matmul_kernel(&self) -> MatmulKernel {
        *self.matmul.lock().expect("matmul choice poisoned")
    }

    pub fn set_matmul_kernel(&self, k: MatmulKernel) {
        *self.matmul.lock().expect("matmul choice poisoned") = k;
    }

    /// Whether few-query steps over long caches split the keys over workgroups (default: yes).
    pub fn split_decode(&self) -> bool {
        self.split_decode.load(Ordering::Relaxed)
    }

    /// Off: every attention runs the flash kernel (benchmarks compare the two).
    pub fn set_split_decode(&self, on: bool) {
        self.split_decode.store(on, Ordering::Relaxed);
    }

    pub fn check_lost(&self) -> Result<(), GpuError> {
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(why) => Err(GpuError::Lost(why)),
            None => Ok(()),
        }
    }

    /// The kernel `entry` of `source`, built once and cached under `key`.
    pub fn kernel(&self, key: &str, source: impl FnOnce() -> String, entry: &str, slots: &[Slot]) -> Arc<Kernel> {
        let mut cache = self.kernels.lock().expect("kernel cache poisoned");
        if let Some(k) = cache.get(key) {
            return k.clone();
        }
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(key), source: wgpu::ShaderSource::Wgsl(sources::with_prelude(&source()).into()) });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match s {
                    Slot::Uniform => wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
                    Slot::Read => wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only: true }, has_dynamic_offset: false, min_binding_size: None },
                    Slot::ReadWrite => wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only: false }, has_dynamic_offset: false, min_binding_size: None },
                },
                count: None,
            })
            .collect();
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(key), entries: &entries });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: Some(key), bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let k = Arc::new(Kernel { pipeline, layout });
        cache.insert(key.to_string(), k.clone());
        k
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        // Zero-length bindings are invalid: keep at least 4 bytes.
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let padded;
        let contents = if bytes.len() < 4 {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        self.buffer_with(label, contents, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST)
    }

    /// A buffer holding `contents` (length a multiple of 4), written through the queue: no
    /// mapping, so a lost or destroyed device yields an error at submission, not a panic.
    fn buffer_with(&self, label: &str, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let b = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: contents.len().max(4).next_multiple_of(4) as u64, usage: usage | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        if contents.len() % 4 == 0 {
            self.queue.write_buffer(&b, 0, contents);
        } else {
            let mut padded = contents.to_vec();
            padded.resize(contents.len().next_multiple_of(4), 0);
            self.queue.write_buffer(&b, 0, &padded);
        }
        b
    }

    /// An uninitialised storage buffer of `len` f32.
    pub fn scratch(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.buffer_with(label, bytemuck::bytes_of(value), wgpu::BufferUsages::UNIFORM)
    }

    /// Records one dispatch of `kernel` with `buffers` bound in slot order.
    pub fn dispatch(&self, encoder: &mut wgpu::CommandEncoder, label: &str, kernel: &Kernel, buffers: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        self.dispatch_work(encoder, label, kernel, buffers, groups, Work::default())
    }

    /// [`GpuContext::dispatch`] saying how much work it is (for profiles).
    pub fn dispatch_work(&self, encoder: &mut wgpu::CommandEncoder, label: &str, kernel: &Kernel, buffers: &[&wgpu::Buffer], groups: (u32, u32, u32), work: Work) {
        let entries: Vec<wgpu::BindGroupEntry> = buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() }).collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout: &kernel.layout, entries: &entries });
        let mut profile = self.profile.lock().expect("profile lock");
        let timestamp_writes = profile.as_mut().filter(|p| (p.passes.len() as u32) < PROFILE_PASSES).map(|p| {
            let k = p.passes.len() as u32;
            p.passes.push((label.to_string(), work));
            wgpu::ComputePassTimestampWrites { query_set: &p.queries, beginning_of_pass_write_index: Some(2 * k), end_of_pass_write_index: Some(2 * k + 1) }
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }

    /// Copies `len` f32 of each source into mappable buffers within `encoder`; after submit,
    /// [`GpuContext::read_staged`] returns them.
    pub fn stage(&self, encoder: &mut wgpu::CommandEncoder, sources: &[(&wgpu::Buffer, usize)]) -> Vec<(wgpu::Buffer, usize)> {
        let with_offsets: Vec<(&wgpu::Buffer, usize, usize)> = sources.iter().map(|(b, len)| (*b, 0, *len)).collect();
        self.stage_ranges(encoder, &with_offsets)
    }

    /// Like [`GpuContext::stage`] for `(buffer, first f32, count)` ranges.
    pub fn stage_ranges(&self, encoder: &mut wgpu::CommandEncoder, sources: &[(&wgpu::Buffer, usize, usize)]) -> Vec<(wgpu::Buffer, usize)> {
        sources
            .iter()
            .map(|(src, offset, len)| {
                let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback staging"),
                    size: (len.max(&1) * 4) as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                if *len > 0 {
                    encoder.copy_buffer_to_buffer(src, (*offset * 4) as u64, &staging, 0, (*len * 4) as u64);
                }
                (staging, *len)
            })
            .collect()
    }

    /// Native: blocks until submitted work is done (fires map callbacks). In the browser the
    /// event loop does this, so it is a no-op there.
    pub fn wait_native(&self) -> Result<(), GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Operation(e.to_string()))?;
        self.check_lost()
    }

    /// Maps staged buffers and returns their contents. Never blocks: natively call
    /// [`GpuContext::wait_native`] first (or use [`GpuContext::read_staged`]); in the browser
    /// the map callbacks resolve it.
    pub async fn read_staged_async(&self, staged: Vec<(wgpu::Buffer, usize)>) -> Result<Vec<Vec<f32>>, GpuError> {
        let maps: Vec<MapFuture> = staged
            .iter()
            .map(|(buf, _)| {
                let fut = MapFuture::default();
                let state = fut.state.clone();
                buf.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                    if let Ok(mut s) = state.lock() {
                        s.0 = Some(r.map_err(|e| e.to_string()));
                        if let Some(w) = s.1.take() {
                            w.wake();
                        }
                    }
                });
                fut
            })
            .collect();
        self.wait_native()?;
        for m in maps {
            m.await.map_err(GpuError::Operation)?;
        }
        self.check_lost()?;
        staged
            .into_iter()
            .map(|(buf, len)| {
                let out = {
                    let view = buf.slice(..).get_mapped_range().map_err(|e| GpuError::Operation(e.to_string()))?;
                    bytemuck::pod_collect_to_vec::<u8, f32>(&view[..len * 4])
                };
                buf.unmap();
                Ok(out)
            })
            .collect()
    }

    /// Blocking read for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_staged(&self, staged: Vec<(wgpu::Buffer, usize)>) -> Result<Vec<Vec<f32>>, GpuError> {
        pollster::block_on(self.read_staged_async(staged))
    }

    /// Submits and waits (native benchmarks).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<(), GpuError> {
        self.queue.submit([encoder.finish()]);
        self.wait_native()
    }

    /// Starts timing every dispatch (false when the device has no timestamp queries).
    pub fn start_profile(&self) -> bool {
        if !self.timestamps {
            return false;
        }
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: 2 * PROFILE_PASSES });
        *self.profile.lock().expect("profile lock") = Some(Profile { queries, passes: Vec::new() });
        true
    }

    /// Stops timing and returns each timed dispatch, in order (after the work was submitted).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn finish_profile(&self) -> Result<Vec<Timed>, GpuError> {
        let Some(p) = self.profile.lock().expect("profile lock").take() else { return Ok(vec![]) };
        let count = 2 * p.passes.len() as u32;
        if count == 0 {
            return Ok(vec![]);
        }
        let bytes = count as u64 * 8;
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some("profile resolve"), size: bytes, usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC, mapped_at_creation: false });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some("profile staging"), size: bytes, usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, mapped_at_creation: false });
        let mut enc = self.encoder("profile resolve");
        enc.resolve_query_set(&p.queries, 0..count, &resolved, 0);
        enc.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        // Read as f32 pairs through the staging path, then reinterpret as u64 ticks.
        let words = pollster::block_on(self.read_staged_async(vec![(staging, 2 * count as usize)]))?.remove(0);
        let ticks: Vec<u64> = words.chunks(2).map(|w| (w[0].to_bits() as u64) | ((w[1].to_bits() as u64) << 32)).collect();
        let period = self.queue.get_timestamp_period() as f64; // ns per tick
        Ok(p.passes.into_iter().enumerate().map(|(k, (label, work))| Timed { label, work, ms: ticks[2 * k + 1].saturating_sub(ticks[2 * k]) as f64 * period / 1e6 }).collect())
    }

    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }
}

/// Resolves when a buffer's `map_async` callback has fired.
#[derive(Default)]
struct MapFuture {
    state: Arc<Mutex<(Option<Result<(), String>>, Option<std::task::Waker>)>>,
}

impl std::future::Future for MapFuture {
    type Output = Result<(), String>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let mut s = self.state.lock().expect("map state poisoned");
        match s.0.take() {
            Some(r) => std::task::Poll::Ready(r),
            None => {
                s.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}
