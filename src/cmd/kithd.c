#include <stdio.h>
int main(void){puts("kithd");return 0;}
