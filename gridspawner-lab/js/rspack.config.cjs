// Merged into @jupyter/builder's configuration. Module and chunk ids by order instead of by
// a hash of their absolute paths: the build is then the same in every checkout, so a test
// can rebuild it and compare with the committed files (tests/unit/test_lab_extension_build.py).
module.exports = {
  optimization: { moduleIds: 'natural', chunkIds: 'natural' }
};
