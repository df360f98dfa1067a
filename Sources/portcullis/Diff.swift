import ArgumentParser
import Foundation
import PortcullisCompiler

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a policy's compiled output with its golden files.",
        discussion: """
            Golden files live in GOLDEN/<policy name>/<layout>.<extension>, with the extensions
            iptables, ip6tables, nft and nft.json. 'diff' compiles the policy for every golden file
            it has and prints a unified diff for each mismatch; use it in CI to catch any change to
            the rules a policy produces.

            --update (re)writes the golden files for every layout and backend that can express
            the policy. Read what changed before you commit it.

            Examples:
              portcullis diff policies/web-stack.policy
              portcullis diff policies/*.policy --golden golden
              portcullis diff policies/web-stack.policy --update
            """)

    @Argument(help: "Policy files.")
    var policies: [String]

    @Option(help: "The golden directory.")
    var golden = "golden"

    @Flag(help: "Rewrite the golden files instead of comparing.")
    var update = false

    func run() throws {
        let goldens = Goldens(directory: golden)
        var differences = 0
        var failed = false
        for policy in policies {
            if update {
                switch goldens.update(policyPath: policy) {
                case .success(let changes):
                    print(changes.isEmpty ? "\(policy): golden files up to date" : changes.joined(separator: "\n"))
                case .failure(let failure):
                    printError(failure.report)
                    failed = true
                }
                continue
            }
            switch goldens.compare(policyPath: policy) {
            case .success(let comparisons):
                for comparison in comparisons {
                    if let diff = comparison.diff {
                        print(diff, terminator: "")
                        differences += 1
                    }
                }
                if comparisons.allSatisfy({ $0.diff == nil }) {
                    print("\(policy): \(comparisons.count) golden file\(comparisons.count == 1 ? "" : "s") match")
                }
            case .failure(let failure):
                printError(failure.report)
                failed = true
            }
        }
        if failed { throw ExitCode(2) }
        if differences > 0 {
            printError("\(differences) golden file\(differences == 1 ? "" : "s") differ")
            throw ExitCode(1)
        }
    }
}
