// A narrow C interface over the Faiss C++ API, for the worker's Rust code.
//
// Every function catches C++ exceptions and reports them as text in `err`
// (NUL-terminated, cut to `err_len`), returning 0 / NULL on failure, so no
// exception ever crosses into Rust.

#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

namespace {

void report(char* err, size_t err_len, const char* what) {
    if (err == nullptr || err_len == 0) {
        return;
    }
    std::strncpy(err, what, err_len - 1);
    err[err_len - 1] = '\0';
}

template <typename F>
int guarded(char* err, size_t err_len, F&& body) {
    try {
        body();
        return 1;
    } catch (const std::exception& e) {
        report(err, err_len, e.what());
    } catch (...) {
        report(err, err_len, "unknown C++ exception");
    }
    return 0;
}

// Search parameters fitting the index's type: nprobe for IVF, efSearch for
// HNSW, through a pre-transform (OPQ, PCA) when there is one.
struct Params {
    std::unique_ptr<faiss::SearchParameters> inner;
    std::unique_ptr<faiss::SearchParametersPreTransform> outer;

    faiss::SearchParameters* build(
            const faiss::Index* index,
            int64_t nprobe,
            int64_t ef_search,
            faiss::IDSelector* selector) {
        const faiss::Index* target = index;
        auto pre = dynamic_cast<const faiss::IndexPreTransform*>(index);
        if (pre != nullptr) {
            target = pre->index;
        }
        if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(target)) {
            auto p = std::make_unique<faiss::SearchParametersIVF>();
            p->nprobe = nprobe > 0 ? static_cast<size_t>(nprobe) : ivf->nprobe;
            inner = std::move(p);
        } else if (auto hnsw = dynamic_cast<const faiss::IndexHNSW*>(target)) {
            auto p = std::make_unique<faiss::SearchParametersHNSW>();
            p->efSearch = ef_search > 0 ? static_cast<int>(ef_search)
                                        : hnsw->hnsw.efSearch;
            inner = std::move(p);
        } else {
            inner = std::make_unique<faiss::SearchParameters>();
        }
        if (pre == nullptr) {
            inner->sel = selector;
            return inner.get();
        }
        outer = std::make_unique<faiss::SearchParametersPreTransform>();
        outer->index_params = inner.get();
        outer->sel = selector;
        return outer.get();
    }
};

} // namespace

extern "C" {

void* lh_faiss_new(
        int dimension,
        const char* factory,
        int inner_product,
        char* err,
        size_t err_len) {
    faiss::Index* index = nullptr;
    guarded(err, err_len, [&] {
        index = faiss::index_factory(
                dimension,
                factory,
                inner_product ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2);
    });
    return index;
}

void lh_faiss_free(void* index) {
    delete static_cast<faiss::Index*>(index);
}

int64_t lh_faiss_ntotal(const void* index) {
    return static_cast<const faiss::Index*>(index)->ntotal;
}

int lh_faiss_is_trained(const void* index) {
    return static_cast<const faiss::Index*>(index)->is_trained ? 1 : 0;
}

int lh_faiss_dimension(const void* index) {
    return static_cast<const faiss::Index*>(index)->d;
}

// The HNSW efSearch of the index (through a pre-transform), 0 when it is not HNSW.
// Faiss 1.7.3 ignores SearchParametersHNSW::efSearch, so the worker sets this
// member, under its write lock, for a search that asks for another value.
static faiss::IndexHNSW* hnsw_of(const void* index) {
    auto idx = static_cast<faiss::Index*>(const_cast<void*>(index));
    if (auto pre = dynamic_cast<faiss::IndexPreTransform*>(idx)) {
        idx = pre->index;
    }
    return dynamic_cast<faiss::IndexHNSW*>(idx);
}

int lh_faiss_hnsw_ef(const void* index) {
    auto hnsw = hnsw_of(index);
    return hnsw != nullptr ? hnsw->hnsw.efSearch : 0;
}

void lh_faiss_set_hnsw_ef(void* index, int ef) {
    if (auto hnsw = hnsw_of(index)) {
        hnsw->hnsw.efSearch = ef;
    }
}

int lh_faiss_train(
        void* index,
        int64_t n,
        const float* vectors,
        char* err,
        size_t err_len) {
    return guarded(err, err_len, [&] {
        static_cast<faiss::Index*>(index)->train(n, vectors);
    });
}

int lh_faiss_add(
        void* index,
        int64_t n,
        const float* vectors,
        char* err,
        size_t err_len) {
    return guarded(err, err_len, [&] {
        static_cast<faiss::Index*>(index)->add(n, vectors);
    });
}

// The k nearest of each of the nq queries; ids are positions in insertion
// order (-1 where fewer than k pass). `allowed`, when not NULL, is a bitmap
// of `allowed_bits` positions (bit i of byte i/8, least significant first).
int lh_faiss_search(
        const void* index,
        int64_t nq,
        const float* queries,
        int64_t k,
        int64_t nprobe,
        int64_t ef_search,
        const uint8_t* allowed,
        int64_t allowed_bits,
        float* distances,
        int64_t* ids,
        char* err,
        size_t err_len) {
    return guarded(err, err_len, [&] {
        auto idx = static_cast<const faiss::Index*>(index);
        std::unique_ptr<faiss::IDSelectorBitmap> selector;
        if (allowed != nullptr) {
            selector = std::make_unique<faiss::IDSelectorBitmap>(
                    static_cast<size_t>(allowed_bits), allowed);
        }
        Params params;
        auto p = params.build(idx, nprobe, ef_search, selector.get());
        idx->search(nq, queries, k, distances, ids, p);
    });
}

int lh_faiss_write(
        const void* index,
        const char* path,
        char* err,
        size_t err_len) {
    return guarded(err, err_len, [&] {
        faiss::write_index(static_cast<const faiss::Index*>(index), path);
    });
}

void* lh_faiss_read(const char* path, char* err, size_t err_len) {
    faiss::Index* index = nullptr;
    guarded(err, err_len, [&] { index = faiss::read_index(path); });
    return index;
}

} // extern "C"
