namespace PamEventStore.Testing;

/// <summary>Paths in the checkout the tests run from.</summary>
public static class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>Debug or Release: whichever the tests were built in.</summary>
    public static string Configuration { get; } = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;

    public static string ServiceDirectory => Path.Combine(Root, "src", "PamEventStore");

    public static string ServiceAssembly => Path.Combine(ServiceDirectory, "bin", Configuration, "net10.0", "PamEventStore.dll");

    /// <summary>pam-gateway, the gateway simulator and reference client, as the solution builds it.</summary>
    public static string GatewayAssembly => Path.Combine(Root, "src", "PamEventStore.Gateway", "bin", Configuration, "net10.0", "pam-gateway.dll");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PamEventStore.sln"))) return dir.FullName;
        }

        throw new InvalidOperationException($"No PamEventStore.sln above {AppContext.BaseDirectory}");
    }
}
