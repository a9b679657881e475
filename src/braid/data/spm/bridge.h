// braid/data/spm_bridge.h — C interface of the sentencepiece bridge module (libbraid_spm.so).
//
// Debian's libsentencepiece exports its embedded protobuf-lite symbols, which clash with the
// libprotobuf that libtorch loads (the process crashes during start-up when both are linked).
// So sentencepiece lives in a separate module, loaded with dlmopen into its own link-map namespace
// by tokenizer.cpp, and only this C interface crosses the boundary.
#pragma once

#include <stddef.h>

extern "C" {

// Train a model from `n` NUL-terminated lines with sentencepiece command-line `args`.
// On success returns 0 and a malloc'ed serialized model in *proto / *proto_len;
// on failure returns non-zero and a malloc'ed message in *err. Free both with braid_spm_free.
int braid_spm_train(const char* args, const char* const* lines, size_t n, char** proto, size_t* proto_len, char** err);

// Load a serialized model; returns a handle, or null with a malloc'ed message in *err.
void* braid_spm_load(const char* proto, size_t len, char** err);
void braid_spm_unload(void* handle);
int braid_spm_vocab_size(void* handle);
// Encode `text` into ids. Returns the number of ids (writing at most `cap` into `ids`), or -1.
int braid_spm_encode(void* handle, const char* text, size_t len, int* ids, int cap);
// Encode into pieces joined by '\n' (malloc'ed); returns null on failure.
char* braid_spm_pieces(void* handle, const char* text, size_t len);
// Decode `n` ids into text (malloc'ed, NUL-terminated, its length in *len: it may hold NULs);
// returns null on failure.
char* braid_spm_decode(void* handle, const int* ids, size_t n, size_t* len);
// The id of a piece, or -1 when it is not in the vocabulary.
int braid_spm_piece_to_id(void* handle, const char* piece, size_t len);
// The piece of an id (malloc'ed), or null when out of range.
char* braid_spm_id_to_piece(void* handle, int id);
void braid_spm_free(void* p);
}
