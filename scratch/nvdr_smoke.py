import sys, time, importlib
import torch, torch.utils.cpp_extension as ce
orig = ce._import_module_from_library
def patched(module_name, path, is_python_module):
    m = orig(module_name, path, is_python_module)
    if is_python_module: sys.modules[module_name] = m
    return m
ce._import_module_from_library = patched
import nvdiffrast.torch as dr
t=time.time(); ctx = dr.RasterizeCudaContext(); print("ctx", time.time()-t)
pos = torch.tensor([[[-0.8,-0.8,0,1],[0.8,-0.8,0,1],[0,0.8,0,1]]], device="cuda", dtype=torch.float32)
tri = torch.tensor([[0,1,2]], device="cuda", dtype=torch.int32)
t=time.time(); rast,_ = dr.rasterize(ctx, pos, tri, resolution=[8,8]); torch.cuda.synchronize(); print("rast", time.time()-t)
print(rast[0,:,:,3])
import wrap_torch2jax; print("wrap_torch2jax ok", dir(wrap_torch2jax)[:20])
