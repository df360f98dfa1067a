import Foundation
import Testing

/// contrib/ansible's `portcullis` module, run by ansible-core (installed by .ci/setup) against a
/// namespace host: check mode is the plan and changes nothing, diff mode shows the plan, apply
/// reports changed then ok, and a confirmation deadline is met by a later task.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct AnsibleModuleTests {
    static let ansible = run(["which", "ansible"]).status == 0

    struct Outcome {
        let status: String
        let output: String
    }

    func module(_ namespace: TestNamespace, _ arguments: String, _ flags: [String] = []) -> Outcome {
        let python = run(["which", "python3"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let result = namespace.exec(
            [
                "env", "ANSIBLE_DEPRECATION_WARNINGS=False", "ansible", "localhost", "-i", "localhost,", "-c",
                "local", "-M", Repo.root + "/contrib/ansible/library", "-m", "portcullis", "-a",
                arguments + " binary=\(CommandLineTests.binary)", "-e", "ansible_python_interpreter=\(python)",
            ] + flags)
        let status = ["CHANGED", "SUCCESS", "FAILED"].first { result.stdout.contains("localhost | \($0)") } ?? "?"
        return Outcome(status: status, output: result.stdout + result.stderr)
    }

    @Test func appliesPlansAndConfirms() throws {
        try #require(Self.ansible || !Kernel.inCI, "CI must have ansible-core (.ci/setup installs it)")
        guard Self.ansible else { return }
        let namespace = try TestNamespace()
        let state = NSTemporaryDirectory() + "portcullis-ansible-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let webStack = "policy=\(Repo.policies)/web-stack.policy state_dir=\(state)"
        let empty = namespace.savedIptables()

        let checked = module(namespace, webStack, ["--check", "--diff"])
        #expect(checked.status == "CHANGED", "\(checked.output)")
        #expect(checked.output.contains("+ -A FORWARD -j DOCKER-USER"), "diff mode shows the plan")
        #expect(namespace.savedIptables() == empty, "check mode changes nothing")

        let applied = module(namespace, webStack)
        #expect(applied.status == "CHANGED" && applied.output.contains("applied generation 1"), "\(applied.output)")
        #expect(module(namespace, webStack).status == "SUCCESS", "the same policy again changes nothing")

        let other = "policy=\(Repo.policies)/icc-off.policy state_dir=\(state) prune=true confirm=60"
        let waiting = module(namespace, other)
        #expect(waiting.status == "CHANGED" && waiting.output.contains("unless 'portcullis confirm 2"))
        #expect(FileManager.default.fileExists(atPath: state + "/pending.json"))
        let confirmed = module(namespace, "state=confirmed state_dir=\(state)")
        #expect(confirmed.status == "CHANGED" && confirmed.output.contains("confirmed generation 2"))
        #expect(!FileManager.default.fileExists(atPath: state + "/pending.json"))

        let refused = module(namespace, "policy=\(Repo.policies)/seed.policy state_dir=\(state)")
        #expect(refused.status == "FAILED" && refused.output.contains("--prune"), "\(refused.output)")
        #expect(module(namespace, "state=rolled_back state_dir=\(state)").status == "CHANGED")
        #expect(module(namespace, "state=rolled_back state_dir=\(state)").status == "CHANGED")
        #expect(namespace.savedIptables() == empty, "both generations rolled back")
        #expect(module(namespace, "state=rolled_back state_dir=\(state)").status == "SUCCESS")
    }
}
