; Inno Setup script for the Windows installer. Build dist\metainspect with PyInstaller first
; (packaging\build.sh under Git Bash, or: python -m PyInstaller packaging\metainspect.spec), then:
;   iscc packaging\windows\metainspect.iss
; The installer needs no network: everything, the meta-trained model included, is in the bundle.
#define AppVersion "0.1.0"

[Setup]
AppId={{6C1C8E5E-4F1B-4B8C-9A57-5E0B9B7F2A11}
AppName=MetaInspect
AppVersion={#AppVersion}
AppPublisher=MetaInspect
DefaultDirName={autopf}\MetaInspect
DefaultGroupName=MetaInspect
OutputDir=..\..\dist
OutputBaseFilename=MetaInspect-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequiredOverridesAllowed=dialog

[Files]
Source: "..\..\dist\metainspect\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\MetaInspect"; Filename: "{app}\metainspect.exe"
Name: "{group}\MetaInspect Lab (command line)"; Filename: "{cmd}"; Parameters: "/k ""{app}\metainspect-lab.exe"" --help"
Name: "{autodesktop}\MetaInspect"; Filename: "{app}\metainspect.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\metainspect.exe"; Description: "Start MetaInspect"; Flags: nowait postinstall skipifsilent
