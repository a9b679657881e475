// placeholder so the layer library is never empty; real sources sit beside it
namespace braid { void objectives_layer_anchor() {} }
