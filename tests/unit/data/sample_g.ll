; ModuleID = 's.c'
source_filename = "s.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

%struct.point = type { i32, i32 }

@greeting = internal global ptr @.str, align 8, !dbg !0
@counter = dso_local global i32 0, align 4, !dbg !7
@.str = private unnamed_addr constant [13 x i8] c"hello, world\00", align 1, !dbg !9

; Function Attrs: minsize nounwind optsize uwtable
define dso_local i32 @sum(ptr noundef %0, i32 noundef %1) #0 !dbg !28 {
  %3 = alloca ptr, align 8
  %4 = alloca i32, align 4
  %5 = alloca i32, align 4
  %6 = alloca i32, align 4
  store ptr %0, ptr %3, align 8, !tbaa !42
    #dbg_declare(ptr %3, !37, !DIExpression(), !45)
  store i32 %1, ptr %4, align 4, !tbaa !24
    #dbg_declare(ptr %4, !38, !DIExpression(), !46)
  call void @llvm.lifetime.start.p0(ptr %5) #3, !dbg !47
    #dbg_declare(ptr %5, !39, !DIExpression(), !48)
  store i32 0, ptr %5, align 4, !dbg !49, !tbaa !24
  call void @llvm.lifetime.start.p0(ptr %6) #3, !dbg !50
    #dbg_declare(ptr %6, !40, !DIExpression(), !51)
  store i32 0, ptr %6, align 4, !dbg !52, !tbaa !24
  br label %7, !dbg !50

7:                                                ; preds = %29, %2
  %8 = load i32, ptr %6, align 4, !dbg !53, !tbaa !24
  %9 = load i32, ptr %4, align 4, !dbg !55, !tbaa !24
  %10 = icmp slt i32 %8, %9, !dbg !56
  br i1 %10, label %12, label %11, !dbg !57

11:                                               ; preds = %7
  call void @llvm.lifetime.end.p0(ptr %6) #3, !dbg !58
  br label %32

12:                                               ; preds = %7
  %13 = load ptr, ptr %3, align 8, !dbg !59, !tbaa !42
  %14 = load i32, ptr %6, align 4, !dbg !60, !tbaa !24
  %15 = sext i32 %14 to i64, !dbg !59
  %16 = getelementptr inbounds %struct.point, ptr %13, i64 %15, !dbg !59
  %17 = getelementptr inbounds nuw %struct.point, ptr %16, i32 0, i32 0, !dbg !61
  %18 = load i32, ptr %17, align 4, !dbg !61, !tbaa !62
  %19 = call i32 @twice(i32 noundef %18) #4, !dbg !64
  %20 = load ptr, ptr %3, align 8, !dbg !65, !tbaa !42
  %21 = load i32, ptr %6, align 4, !dbg !66, !tbaa !24
  %22 = sext i32 %21 to i64, !dbg !65
  %23 = getelementptr inbounds %struct.point, ptr %20, i64 %22, !dbg !65
  %24 = getelementptr inbounds nuw %struct.point, ptr %23, i32 0, i32 1, !dbg !67
  %25 = load i32, ptr %24, align 4, !dbg !67, !tbaa !68
  %26 = add nsw i32 %19, %25, !dbg !69
  %27 = load i32, ptr %5, align 4, !dbg !70, !tbaa !24
  %28 = add nsw i32 %27, %26, !dbg !71
  store i32 %28, ptr %5, align 4, !dbg !72, !tbaa !24
  br label %29, !dbg !73

29:                                               ; preds = %12
  %30 = load i32, ptr %6, align 4, !dbg !74, !tbaa !24
  %31 = add nsw i32 %30, 1, !dbg !75
  store i32 %31, ptr %6, align 4, !dbg !76, !tbaa !24
  br label %7, !dbg !58, !llvm.loop !77

32:                                               ; preds = %11
  %33 = load i32, ptr %4, align 4, !dbg !81, !tbaa !24
  switch i32 %33, label %40 [
    i32 1, label %34
    i32 7, label %37
  ], !dbg !82

34:                                               ; preds = %32
  %35 = load i32, ptr %5, align 4, !dbg !83, !tbaa !24
  %36 = add nsw i32 %35, 1, !dbg !85
  store i32 %36, ptr %5, align 4, !dbg !86, !tbaa !24
  br label %41, !dbg !87

37:                                               ; preds = %32
  %38 = load i32, ptr %5, align 4, !dbg !88, !tbaa !24
  %39 = add nsw i32 %38, -1, !dbg !89
  store i32 %39, ptr %5, align 4, !dbg !90, !tbaa !24
  br label %41, !dbg !91

40:                                               ; preds = %32
  br label %41, !dbg !92

41:                                               ; preds = %40, %37, %34
  %42 = load ptr, ptr @greeting, align 8, !dbg !93, !tbaa !94
  %43 = call i64 @strlen(ptr noundef %42) #5, !dbg !96
  %44 = trunc i64 %43 to i32, !dbg !97
  %45 = load i32, ptr @counter, align 4, !dbg !98, !tbaa !24
  %46 = add nsw i32 %45, %44, !dbg !99
  store i32 %46, ptr @counter, align 4, !dbg !100, !tbaa !24
  %47 = load i32, ptr %5, align 4, !dbg !101, !tbaa !24
  call void @llvm.lifetime.end.p0(ptr %5) #3, !dbg !102
  ret i32 %47, !dbg !103
}

; Function Attrs: nocallback nofree nosync nounwind willreturn memory(argmem: readwrite)
declare void @llvm.lifetime.start.p0(ptr captures(none)) #1

; Function Attrs: minsize nounwind optsize uwtable
define internal i32 @twice(i32 noundef %0) #0 !dbg !104 {
  %2 = alloca i32, align 4
  store i32 %0, ptr %2, align 4, !tbaa !24
    #dbg_declare(ptr %2, !108, !DIExpression(), !109)
  %3 = load i32, ptr %2, align 4, !dbg !110, !tbaa !24
  %4 = mul nsw i32 %3, 2, !dbg !111
  ret i32 %4, !dbg !112
}

; Function Attrs: nocallback nofree nosync nounwind willreturn memory(argmem: readwrite)
declare void @llvm.lifetime.end.p0(ptr captures(none)) #1

; Function Attrs: minsize nounwind optsize willreturn memory(read)
declare !dbg !113 i64 @strlen(ptr noundef) #2

attributes #0 = { minsize nounwind optsize uwtable "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { nocallback nofree nosync nounwind willreturn memory(argmem: readwrite) }
attributes #2 = { minsize nounwind optsize willreturn memory(read) "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #3 = { nounwind }
attributes #4 = { minsize optsize }
attributes #5 = { minsize nounwind optsize willreturn memory(read) }

!llvm.dbg.cu = !{!2}
!llvm.module.flags = !{!17, !18, !19, !20, !21, !22}
!llvm.ident = !{!23}
!llvm.errno.tbaa = !{!24}

!0 = !DIGlobalVariableExpression(var: !1, expr: !DIExpression())
!1 = distinct !DIGlobalVariable(name: "greeting", scope: !2, file: !3, line: 3, type: !15, isLocal: true, isDefinition: true)
!2 = distinct !DICompileUnit(language: DW_LANG_C11, file: !3, producer: "Debian clang version 22.1.8 (1~deb12u1)", isOptimized: true, runtimeVersion: 0, emissionKind: FullDebug, retainedTypes: !4, globals: !6, splitDebugInlining: false, nameTableKind: None)
!3 = !DIFile(filename: "s.c", directory: "/tmp/devmodel/t", checksumkind: CSK_MD5, checksum: "b80f3c2eb93876b43d187034bad9f4b7")
!4 = !{!5}
!5 = !DIBasicType(name: "int", size: 32, encoding: DW_ATE_signed)
!6 = !{!7, !9, !0}
!7 = !DIGlobalVariableExpression(var: !8, expr: !DIExpression())
!8 = distinct !DIGlobalVariable(name: "counter", scope: !2, file: !3, line: 4, type: !5, isLocal: false, isDefinition: true)
!9 = !DIGlobalVariableExpression(var: !10, expr: !DIExpression())
!10 = distinct !DIGlobalVariable(scope: null, file: !3, line: 3, type: !11, isLocal: true, isDefinition: true)
!11 = !DICompositeType(tag: DW_TAG_array_type, baseType: !12, size: 104, elements: !13)
!12 = !DIBasicType(name: "char", size: 8, encoding: DW_ATE_signed_char)
!13 = !{!14}
!14 = !DISubrange(count: 13)
!15 = !DIDerivedType(tag: DW_TAG_pointer_type, baseType: !16, size: 64)
!16 = !DIDerivedType(tag: DW_TAG_const_type, baseType: !12)
!17 = !{i32 7, !"Dwarf Version", i32 5}
!18 = !{i32 2, !"Debug Info Version", i32 3}
!19 = !{i32 1, !"wchar_size", i32 4}
!20 = !{i32 8, !"PIC Level", i32 2}
!21 = !{i32 7, !"PIE Level", i32 2}
!22 = !{i32 7, !"uwtable", i32 2}
!23 = !{!"Debian clang version 22.1.8 (1~deb12u1)"}
!24 = !{!25, !25, i64 0}
!25 = !{!"int", !26, i64 0}
!26 = !{!"omnipotent char", !27, i64 0}
!27 = !{!"Simple C/C++ TBAA"}
!28 = distinct !DISubprogram(name: "sum", scope: !3, file: !3, line: 6, type: !29, scopeLine: 6, flags: DIFlagPrototyped | DIFlagAllCallsDescribed, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !2, retainedNodes: !36, keyInstructions: true)
!29 = !DISubroutineType(types: !30)
!30 = !{!5, !31, !5}
!31 = !DIDerivedType(tag: DW_TAG_pointer_type, baseType: !32, size: 64)
!32 = distinct !DICompositeType(tag: DW_TAG_structure_type, name: "point", file: !3, line: 2, size: 64, elements: !33)
!33 = !{!34, !35}
!34 = !DIDerivedType(tag: DW_TAG_member, name: "x", scope: !32, file: !3, line: 2, baseType: !5, size: 32)
!35 = !DIDerivedType(tag: DW_TAG_member, name: "y", scope: !32, file: !3, line: 2, baseType: !5, size: 32, offset: 32)
!36 = !{!37, !38, !39, !40}
!37 = !DILocalVariable(name: "p", arg: 1, scope: !28, file: !3, line: 6, type: !31)
!38 = !DILocalVariable(name: "n", arg: 2, scope: !28, file: !3, line: 6, type: !5)
!39 = !DILocalVariable(name: "total", scope: !28, file: !3, line: 7, type: !5)
!40 = !DILocalVariable(name: "i", scope: !41, file: !3, line: 8, type: !5)
!41 = distinct !DILexicalBlock(scope: !28, file: !3, line: 8, column: 3)
!42 = !{!43, !43, i64 0}
!43 = !{!"p1 _ZTS5point", !44, i64 0}
!44 = !{!"any pointer", !26, i64 0}
!45 = !DILocation(line: 6, column: 23, scope: !28)
!46 = !DILocation(line: 6, column: 30, scope: !28)
!47 = !DILocation(line: 7, column: 3, scope: !28)
!48 = !DILocation(line: 7, column: 7, scope: !28)
!49 = !DILocation(line: 7, column: 7, scope: !28, atomGroup: 1, atomRank: 1)
!50 = !DILocation(line: 8, column: 8, scope: !41)
!51 = !DILocation(line: 8, column: 12, scope: !41)
!52 = !DILocation(line: 8, column: 12, scope: !41, atomGroup: 2, atomRank: 1)
!53 = !DILocation(line: 8, column: 19, scope: !54)
!54 = distinct !DILexicalBlock(scope: !41, file: !3, line: 8, column: 3)
!55 = !DILocation(line: 8, column: 23, scope: !54)
!56 = !DILocation(line: 8, column: 21, scope: !54, atomGroup: 3, atomRank: 1)
!57 = !DILocation(line: 8, column: 3, scope: !41, atomGroup: 4, atomRank: 1)
!58 = !DILocation(line: 8, column: 3, scope: !54)
!59 = !DILocation(line: 9, column: 20, scope: !54)
!60 = !DILocation(line: 9, column: 22, scope: !54)
!61 = !DILocation(line: 9, column: 25, scope: !54)
!62 = !{!63, !25, i64 0}
!63 = !{!"point", !25, i64 0, !25, i64 4}
!64 = !DILocation(line: 9, column: 14, scope: !54)
!65 = !DILocation(line: 9, column: 30, scope: !54)
!66 = !DILocation(line: 9, column: 32, scope: !54)
!67 = !DILocation(line: 9, column: 35, scope: !54)
!68 = !{!63, !25, i64 4}
!69 = !DILocation(line: 9, column: 28, scope: !54)
!70 = !DILocation(line: 9, column: 11, scope: !54)
!71 = !DILocation(line: 9, column: 11, scope: !54, atomGroup: 5, atomRank: 2)
!72 = !DILocation(line: 9, column: 11, scope: !54, atomGroup: 5, atomRank: 1)
!73 = !DILocation(line: 9, column: 5, scope: !54, atomGroup: 7, atomRank: 1)
!74 = !DILocation(line: 8, column: 27, scope: !54)
!75 = !DILocation(line: 8, column: 27, scope: !54, atomGroup: 6, atomRank: 2)
!76 = !DILocation(line: 8, column: 27, scope: !54, atomGroup: 6, atomRank: 1)
!77 = distinct !{!77, !78, !79, !80}
!78 = !DILocation(line: 8, column: 3, scope: !41)
!79 = !DILocation(line: 9, column: 35, scope: !41)
!80 = !{!"llvm.loop.mustprogress"}
!81 = !DILocation(line: 10, column: 11, scope: !28, atomGroup: 8, atomRank: 2)
!82 = !DILocation(line: 10, column: 3, scope: !28, atomGroup: 8, atomRank: 1)
!83 = !DILocation(line: 10, column: 29, scope: !84)
!84 = distinct !DILexicalBlock(scope: !28, file: !3, line: 10, column: 14)
!85 = !DILocation(line: 10, column: 29, scope: !84, atomGroup: 9, atomRank: 2)
!86 = !DILocation(line: 10, column: 29, scope: !84, atomGroup: 9, atomRank: 1)
!87 = !DILocation(line: 10, column: 33, scope: !84, atomGroup: 10, atomRank: 1)
!88 = !DILocation(line: 10, column: 53, scope: !84)
!89 = !DILocation(line: 10, column: 53, scope: !84, atomGroup: 11, atomRank: 2)
!90 = !DILocation(line: 10, column: 53, scope: !84, atomGroup: 11, atomRank: 1)
!91 = !DILocation(line: 10, column: 57, scope: !84, atomGroup: 12, atomRank: 1)
!92 = !DILocation(line: 10, column: 73, scope: !84, atomGroup: 13, atomRank: 1)
!93 = !DILocation(line: 11, column: 26, scope: !28)
!94 = !{!95, !95, i64 0}
!95 = !{!"p1 omnipotent char", !44, i64 0}
!96 = !DILocation(line: 11, column: 19, scope: !28)
!97 = !DILocation(line: 11, column: 14, scope: !28)
!98 = !DILocation(line: 11, column: 11, scope: !28)
!99 = !DILocation(line: 11, column: 11, scope: !28, atomGroup: 14, atomRank: 2)
!100 = !DILocation(line: 11, column: 11, scope: !28, atomGroup: 14, atomRank: 1)
!101 = !DILocation(line: 12, column: 10, scope: !28, atomGroup: 16, atomRank: 2)
!102 = !DILocation(line: 13, column: 1, scope: !28)
!103 = !DILocation(line: 12, column: 3, scope: !28, atomGroup: 16, atomRank: 1)
!104 = distinct !DISubprogram(name: "twice", scope: !3, file: !3, line: 5, type: !105, scopeLine: 5, flags: DIFlagPrototyped | DIFlagAllCallsDescribed, spFlags: DISPFlagLocalToUnit | DISPFlagDefinition | DISPFlagOptimized, unit: !2, retainedNodes: !107, keyInstructions: true)
!105 = !DISubroutineType(types: !106)
!106 = !{!5, !5}
!107 = !{!108}
!108 = !DILocalVariable(name: "v", arg: 1, scope: !104, file: !3, line: 5, type: !5)
!109 = !DILocation(line: 5, column: 22, scope: !104)
!110 = !DILocation(line: 5, column: 34, scope: !104)
!111 = !DILocation(line: 5, column: 36, scope: !104, atomGroup: 1, atomRank: 2)
!112 = !DILocation(line: 5, column: 27, scope: !104, atomGroup: 1, atomRank: 1)
!113 = !DISubprogram(name: "strlen", scope: !114, file: !114, line: 407, type: !115, flags: DIFlagPrototyped, spFlags: DISPFlagOptimized)
!114 = !DIFile(filename: "/usr/include/string.h", directory: "", checksumkind: CSK_MD5, checksum: "0ee11a08692643b86154f96759d0f7fa")
!115 = !DISubroutineType(types: !116)
!116 = !{!117, !15}
!117 = !DIBasicType(name: "unsigned long", size: 64, encoding: DW_ATE_unsigned)
