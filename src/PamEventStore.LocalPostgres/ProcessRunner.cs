using System.Diagnostics;

namespace PamEventStore.LocalPostgres;

internal sealed record ProcessResult(string Command, int ExitCode, string StdOut, string StdErr);

internal static class ProcessRunner
{
    // PostgreSQL refuses to run as root, so as root every binary goes through runuser.
    public static bool RunAsPostgresUser => OperatingSystem.IsLinux() && Environment.IsPrivilegedProcess;

    public static async Task<ProcessResult> RunAsync(
        string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout, CancellationToken ct,
        bool asPostgresUser = true)
    {
        var startInfo = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            // The postgres user cannot chdir into e.g. /root, and the tools complain about it.
            WorkingDirectory = workingDirectory,
        };
        if (asPostgresUser && RunAsPostgresUser)
        {
            startInfo.FileName = "runuser";
            foreach (var a in new[] { "-u", "postgres", "--", fileName }) startInfo.ArgumentList.Add(a);
        }
        else
        {
            startInfo.FileName = fileName;
        }
        foreach (var a in arguments) startInfo.ArgumentList.Add(a);
        var command = string.Join(' ', startInfo.ArgumentList.Prepend(startInfo.FileName).Select(Quote));

        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"Could not run `{command}`: {e.Message}", e);
        }

        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            ct.ThrowIfCancellationRequested();
            throw new TimeoutException($"`{command}` did not finish within {timeout.TotalSeconds:0} s.");
        }
        return new ProcessResult(command, process.ExitCode, (await stdout).Trim(), (await stderr).Trim());
    }

    private static string Quote(string s) =>
        IsShellSafe(s) ? s : s.IndexOfAny(['"', '$', '`', '\\']) < 0 ? $"\"{s}\"" : ShellQuote(s);

    // pg_ctl hands -o to /bin/sh, so each token has to survive a shell.
    public static string ShellQuote(string s) => IsShellSafe(s) ? s : "'" + s.Replace("'", "'\\''") + "'";

    private static bool IsShellSafe(string s) => s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "-_=./:,+@%".Contains(c));
}
