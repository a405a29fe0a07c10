extension ProcessorOptions {
    /// `--help`: the settings table, as docs/configuration.md shows it.
    static func usage(_ step: String, settings: [ProcessorSetting] = ProcessorSetting.all) -> String {
        var lines = wrapped(
            ["usage: \(step)"] + settings.compactMap { setting in setting.flag.map { "[\($0) \(setting.valueName)]" } }
                + ["[--help]"])
        lines += [
            "",
            "Serves the '\(step)' step: consumes slipway.\(step).execute and slipway.\(step).compensate until SIGTERM.",
            "An option wins over its variable; a secret may instead be in the file its *_FILE variable names;",
            "an empty variable counts as unset (docs/configuration.md).",
        ]
        for setting in settings {
            // The value's name once: after the option, or after the variable when there is no option.
            let variable = setting.environment.map { setting.flag == nil ? "\($0)=\(setting.valueName)" : $0 }
            let names = [setting.flag.map { "\($0) \(setting.valueName)" }, variable, setting.fileEnvironment]
            let defaultText = setting.defaultValue.isEmpty ? "" : " (default: \(setting.defaultValue))"
            lines.append("  " + names.compactMap(\.self).joined(separator: ", ") + defaultText)
            lines.append("      " + setting.help)
        }
        return lines.joined(separator: "\n")
    }

    /// Words on lines of at most 116 characters, the ones after the first indented.
    private static func wrapped(_ words: [String]) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in words {
            if !line.isEmpty, line.count + 1 + word.count > 116 {
                lines.append(line)
                line = "       "
            }
            line += (line.isEmpty || line.hasSuffix("       ") ? "" : " ") + word
        }
        return lines + [line]
    }
}
