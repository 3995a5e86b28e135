"""layering_test: proves that a dependency edge is refused by Bazel's visibility check.

The target under test is analysed with --allow_analysis_failures, so its analysis error
becomes data (AnalysisFailureInfo) that this test inspects instead of a failed build:

    layering_test(name = "core_cannot_see_nlp", probe = "//core/layering_probe:uses_nlp")

passes only when analysing the probe fails with "is not visible"; any other outcome (the
probe builds, or fails for another reason) fails the test.  Probes are tagged `manual` so
that `bazel build //...` does not try to build them directly.
"""

def _layering_test_impl(ctx):
    probe = ctx.attr.probe[0]  # a list: the attribute has a transition
    if AnalysisFailureInfo not in probe:
        return [AnalysisTestResultInfo(
            success = False,
            message = "%s built, but its dependency should be refused by visibility" % probe.label,
        )]
    errors = [c.message for c in probe[AnalysisFailureInfo].causes.to_list()]
    visible = [e for e in errors if "is not visible from target" in e and ctx.attr.expect_in_message in e]
    if not visible:
        return [AnalysisTestResultInfo(
            success = False,
            message = "%s failed, but not with a visibility error naming '%s':\n%s" % (
                probe.label,
                ctx.attr.expect_in_message,
                "\n".join(errors),
            ),
        )]
    return [AnalysisTestResultInfo(success = True, message = visible[0])]

layering_test = rule(
    implementation = _layering_test_impl,
    attrs = {
        "probe": attr.label(
            mandatory = True,
            cfg = analysis_test_transition(settings = {"//command_line_option:allow_analysis_failures": "True"}),
        ),
        "expect_in_message": attr.string(mandatory = True, doc = "the refused target's label, as the error names it"),
    },
    test = True,
    analysis_test = True,
)
