import ArgumentParser
import Foundation
import PortcullisCompiler
import PortcullisKernel
import PortcullisRender

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a policy, and have the kernel validate its ruleset without applying it.",
        discussion: """
            Everything 'compile' checks, then the kernel's own validation in the current network
            namespace, which changes nothing: a libnftables dry run for the nftables backends,
            'iptables-restore --test' for iptables. The kernel needs CAP_NET_ADMIN for that;
            without it, 'check' says so and reports only the policy checks.

            Examples:
              portcullis check policies/web-stack.policy
              portcullis check policies/web-stack.policy --backend nftables
              unshare -rn portcullis check policies/web-stack.policy   # as any user, in a scratch namespace
            """)

    @Argument(help: "The policy file.")
    var policy: String

    @OptionGroup var options: LayoutOptions

    func run() throws {
        let files: [RenderedFile]
        switch Compiler().compile(policy, layout: options.layout, backend: options.backend) {
        case .success(let rendered): files = rendered
        case .failure(let failure): throw fail(failure)
        }
        guard Host.hasNetAdmin else {
            print("\(policy): policy is valid and compiles (\(files.map(\.fileExtension).joined(separator: ", ")))")
            printError(
                "warning: the kernel did not validate the ruleset: that needs CAP_NET_ADMIN (run as root, or inside 'unshare -rn')"
            )
            return
        }
        let rejections = KernelCheck().validate(files)
        if rejections.isEmpty {
            print(
                "\(policy): policy is valid and the kernel accepts its ruleset (\(files.map(\.fileExtension).joined(separator: ", ")))"
            )
            return
        }
        for rejection in rejections { printError("error: \(rejection)") }
        throw ExitCode(2)
    }
}
